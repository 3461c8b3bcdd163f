"""The callback receiver over real HTTP (uvicorn, the console script's app) with a real PostgreSQL inbox:
WeCom's URL verification, events stored once, and every kind of hostile input refused with nothing stored
and nothing echoed."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

import psycopg
import pytest
import requests
from conftest import postgres_conn, sealed_delivery, serving

from wecom.callbacks.crypto import CallbackCrypto, signature
from wecom_dev.processes import free_port

CORP = "wwsimcorp0001"
TOKEN = "cbTokenForTests0123"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CRYPTO = CallbackCrypto.from_settings(TOKEN, AES_KEY, CORP)


@pytest.fixture
def receiver(monkeypatch, db_url):
    """``wecom-callback-receiver``'s app on a free port, configured from the WeCom connection as deployed."""
    from wecom import token_store
    from wecom.callbacks.receiver import application

    extra = {
        "agent_id": 1000002,
        "callback_token": TOKEN,
        "callback_aes_key": AES_KEY,
        "token_store": "memory",
    }
    conn = {"conn_type": "wecom", "host": "http://127.0.0.1:1", "login": CORP, "password": "app-secret-x" * 2,
            "extra": extra}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAREHOUSE", postgres_conn(db_url))
    token_store._postgres_stores.clear()
    with serving(application()) as url:
        yield f"{url}/wecom/callback"


def sealed(message: str, *, crypto: CallbackCrypto = CRYPTO, **when: object) -> tuple[dict, bytes]:
    return sealed_delivery(crypto, message, **when)


def contact_event(change_type: str, **fields: str) -> str:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[change_contact]]></Event><ChangeType>{change_type}</ChangeType>{inner}</xml>")  # fmt: skip


def inbox(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT event, change_type, userid, new_userid, department_id, payload FROM wecom.callback_events"
            " ORDER BY event_id"
        ).fetchall()


def test_url_verification_answers_the_bare_plaintext(receiver):
    timestamp, nonce = str(int(time.time())), "263014780"
    echostr = CRYPTO.encrypt(b"1616140317555161061")
    query = {"msg_signature": signature(TOKEN, timestamp, nonce, echostr), "timestamp": timestamp, "nonce": nonce,
             "echostr": echostr}  # fmt: skip
    started = time.monotonic()
    answer = requests.get(f"{receiver}?{urlencode(query)}", timeout=5)
    assert answer.status_code == 200 and answer.content == b"1616140317555161061"  # no quotes, no newline
    assert time.monotonic() - started < 1


def test_an_event_is_stored_once_however_often_it_is_delivered(receiver, db_url):
    message = contact_event("update_user", UserID="zhangsan", NewUserID="zhangsan2", Department="1,2")
    for nonce in ("a", "b", "c"):  # WeCom's retries re-encrypt with a new random prefix and a new nonce
        query, body = sealed(message, nonce=nonce)
        answer = requests.post(receiver, params=query, data=body, timeout=5)
        assert answer.status_code == 200 and answer.content == b""
    rows = inbox(db_url)
    assert len(rows) == 1
    event, change_type, userid, new_userid, department_id, payload = rows[0]
    assert (event, change_type, userid, new_userid, department_id) == ("change_contact", "update_user", "zhangsan",
                                                                      "zhangsan2", None)  # fmt: skip
    assert payload["Department"] == "1,2"


def test_unknown_events_are_stored_not_refused(receiver, db_url):
    query, body = sealed(
        f"<xml><ToUserName>{CORP}</ToUserName><MsgType>event</MsgType><Event>enter_agent</Event></xml>"
    )
    assert requests.post(receiver, params=query, data=body, timeout=5).status_code == 200
    assert [row[0] for row in inbox(db_url)] == ["enter_agent"]


def _hostile_requests():
    message = contact_event("delete_user", UserID="lisi")
    query, body = sealed(message)
    bad_signature = {**query, "msg_signature": "0" * 40}
    stale_query, stale_body = sealed(message, timestamp=int(time.time()) - 3600)
    other_corp = CallbackCrypto(TOKEN, CRYPTO.aes_key, "wwsomeoneelse")
    foreign_query, foreign_body = sealed(message, crypto=other_corp)
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
              b"<xml><Encrypt>&lol2;</Encrypt></xml>")  # fmt: skip
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'
    not_base64 = b"<xml><Encrypt><![CDATA[%%%not base64%%%]]></Encrypt></xml>"
    signed_junk = base64.b64encode(b"x" * 48).decode()
    junk_query = {**query, "msg_signature": signature(TOKEN, str(query["timestamp"]), "n1", signed_junk)}
    return {
        "wrong signature": (bad_signature, body),
        "stale timestamp (replay)": (stale_query, stale_body),
        "another corp's ReceiveId": (foreign_query, foreign_body),
        "billion laughs": (query, laughs),
        "external entity (XXE)": (query, xxe),
        "not XML": (query, b"\x00\xffnot xml at all"),
        "no Encrypt element": (query, b"<xml><ToUserName>x</ToUserName></xml>"),
        "not base64": (query, not_base64),
        "signed but undecryptable": (junk_query, f"<xml><Encrypt>{signed_junk}</Encrypt></xml>".encode()),
        "no query at all": ({}, body),
    }


@pytest.mark.parametrize("case", list(_hostile_requests()))
def test_hostile_input_gets_a_4xx_stores_nothing_and_echoes_nothing(receiver, db_url, caplog, case):
    query, body = _hostile_requests()[case]
    answer = requests.post(receiver, params=query, data=body, timeout=5)
    assert 400 <= answer.status_code < 500 and answer.content == b""
    assert inbox(db_url) == []
    assert TOKEN not in caplog.text and AES_KEY not in caplog.text


def test_an_oversized_body_and_other_methods_are_refused(receiver, db_url):
    query, _ = sealed("<xml/>")
    assert requests.post(receiver, params=query, data=b"<xml>" + b"a" * 70_000, timeout=5).status_code == 413
    assert requests.put(receiver, params=query, data=b"<xml/>", timeout=5).status_code == 405
    assert requests.get(receiver.replace("/callback", "/"), timeout=5).status_code == 404  # nothing to list
    assert requests.get(receiver.replace("/wecom/callback", "/health"), timeout=5).content == b""
    assert inbox(db_url) == []


@pytest.fixture
def wakeup_redis(monkeypatch):  # before ``receiver``: the app reads its settings when it starts
    """A Redis (the machine's, or a private one) named as the wake-up connection, as docker-compose does."""
    import redis

    from wecom_dev.broker import running_redis

    with running_redis() as url:
        monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAKEUP", url)
        monkeypatch.setenv("WECOM_WAKEUP_CONN_ID", "wecom_wakeup")
        client = redis.Redis.from_url(url)
        yield client
        client.close()


def _subscribed(client, channel: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while client.pubsub_numsub(channel)[0][1] < 1:
        assert time.monotonic() < deadline, f"nobody subscribed to {channel} within {timeout} s"
        time.sleep(0.05)


def test_a_stored_event_fires_the_inbox_assets_message_queue_trigger(wakeup_redis, receiver, db_url):
    """The watcher the events DAG is scheduled on (built as the DAG builds it) fires after a delivery."""
    import asyncio
    import threading

    from wecom import assets

    (watcher,) = assets._inbox_watchers()
    fired: list = []

    def listen() -> None:
        async def first_event() -> None:
            async for event in watcher.trigger.run():
                fired.append(event.payload)
                return

        asyncio.run(asyncio.wait_for(first_event(), 30))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    _subscribed(wakeup_redis, assets.WAKEUP_CHANNEL)
    query, body = sealed(contact_event("create_user", UserID="wangwu"))
    posted = time.monotonic()
    assert requests.post(receiver, params=query, data=body, timeout=5).status_code == 200
    listener.join(30)
    assert fired and fired[0]["channel"] == assets.WAKEUP_CHANNEL and fired[0]["data"] == "stored"
    assert time.monotonic() - posted < 5  # the trigger polls every second; the sweep would take a minute
    assert [row[2] for row in inbox(db_url)] == ["wangwu"]


def test_only_new_events_wake_and_a_burst_becomes_few_messages(wakeup_redis, receiver):
    from wecom.assets import WAKEUP_CHANNEL

    listener = wakeup_redis.pubsub()
    listener.subscribe(WAKEUP_CHANNEL)
    _subscribed(wakeup_redis, WAKEUP_CHANNEL)

    def messages(wait: float) -> int:
        count, deadline = 0, time.monotonic() + wait
        while time.monotonic() < deadline:
            message = listener.get_message(timeout=0.1)
            count += bool(message and message["type"] == "message")
        return count

    deliveries = [sealed(contact_event("update_user", UserID=f"u{n}")) for n in range(40)]
    for query, body in deliveries:
        assert requests.post(receiver, params=query, data=body, timeout=5).status_code == 200
    burst = messages(2)
    assert 1 <= burst <= 40
    for query, body in deliveries[:5]:  # WeCom's retries of what is already stored wake nobody
        assert requests.post(receiver, params=query, data=body, timeout=5).status_code == 200
    assert messages(1.5) == 0
    listener.close()


@pytest.fixture
def silent_redis(monkeypatch):
    """The wake-up connection names a Redis that is not there (and carries a password to look for)."""
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAKEUP", f"redis://:{TOKEN}@127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("WECOM_WAKEUP_CONN_ID", "wecom_wakeup")


def test_without_redis_the_receiver_still_stores_and_says_once_why_there_is_no_wakeup(
    silent_redis, receiver, db_url, caplog
):

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "wake-up" in r.getMessage()]

    for n in range(3):
        query, body = sealed(contact_event("delete_user", UserID=f"gone{n}"))
        started = time.monotonic()
        assert requests.post(receiver, params=query, data=body, timeout=5).status_code == 200
        assert time.monotonic() - started < 1  # the failing publish is not on the request's path
        deadline = time.monotonic() + 20
        while not warnings() and time.monotonic() < deadline:  # each publish is tried (and fails) on its own
            time.sleep(0.1)
    assert len(inbox(db_url)) == 3
    assert len(warnings()) == 1 and "every-minute sweep" in warnings()[0]
    assert TOKEN not in caplog.text
