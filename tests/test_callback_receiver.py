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
    conn = {
        "conn_type": "wecom",
        "host": "http://127.0.0.1:1",
        "login": CORP,
        "password": "app-secret-x" * 2,
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAREHOUSE", postgres_conn(db_url))
    token_store._postgres_stores.clear()
    with serving(application()) as url:
        yield f"{url}/wecom/callback"


def sealed(message: str, *, crypto: CallbackCrypto = CRYPTO, **when: object) -> tuple[dict, bytes]:
    return sealed_delivery(crypto, message, **when)


def contact_event(change_type: str, **fields: str) -> str:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[change_contact]]></Event><ChangeType>{change_type}</ChangeType>{inner}</xml>"
    )


def inbox(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT event, change_type, userid, new_userid, department_id, payload FROM wecom.callback_events"
            " ORDER BY event_id"
        ).fetchall()


def test_url_verification_answers_the_bare_plaintext(receiver):
    timestamp, nonce = str(int(time.time())), "263014780"
    echostr = CRYPTO.encrypt(b"1616140317555161061")
    query = {
        "msg_signature": signature(TOKEN, timestamp, nonce, echostr),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
    }
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
    expected = ("change_contact", "update_user", "zhangsan", "zhangsan2", None)
    assert (event, change_type, userid, new_userid, department_id) == expected
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
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<xml><Encrypt>&lol2;</Encrypt></xml>"
    )
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


class Watching:
    """An inbox trigger built as the DAGs' assets build it, run as the triggerer runs it (its own event
    loop, in a thread), with what it fired and when."""

    def __init__(self, trigger) -> None:
        import asyncio
        import threading

        self.trigger, self.fired = trigger, []
        self.loop = asyncio.new_event_loop()
        self.task = self.loop.create_task(self._consume())
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import asyncio

        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:  # stop(): cancelled as the triggerer cancels a trigger
            pass
        finally:
            self.loop.close()

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.fired.append((time.monotonic(), event.payload))

    def wait(self, count: int, timeout: float) -> float | None:
        """When the ``count``-th event fired (None: not within ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while len(self.fired) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.fired[count - 1][0] if len(self.fired) >= count else None

    def stop(self) -> None:
        if self.thread.is_alive():  # else the trigger ended by itself and its loop is closed
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)
        assert not self.thread.is_alive(), "the trigger did not stop when cancelled"


@pytest.fixture
def watch(receiver):
    """Start watchers on the receiver's warehouse: ``watch(asset)`` with the asset's own trigger, or
    ``watch(asset, poll_interval=.., refire_after=..)`` with those changed."""
    from wecom.triggers import InboxTrigger

    started = []

    def start(asset, **changes) -> Watching:
        (watcher,) = asset.watchers
        _, kwargs = watcher.trigger.serialize()
        watching = Watching(InboxTrigger(**{**kwargs, **changes}))  # as the triggerer builds it
        started.append(watching)
        time.sleep(0.5)  # connected and listening
        return watching

    yield start
    for watching in started:
        watching.stop()


def post(receiver: str, message: str) -> float:
    query, body = sealed(message)
    posted = time.monotonic()
    assert requests.post(receiver, params=query, data=body, timeout=5).status_code == 200
    return posted


def card_tap(userid: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[{userid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[template_card_event]]></Event><TaskId><![CDATA[t1]]></TaskId></xml>"
    )


def test_a_stored_event_fires_its_kinds_trigger_at_once_and_the_other_kind_stays_quiet(
    receiver, watch, db_url
):
    from wecom.assets import CARD_TAPS, CONTACT_EVENTS

    contacts, taps = watch(CONTACT_EVENTS), watch(CARD_TAPS)
    assert contacts.wait(1, 1.5) is None and taps.wait(1, 0.1) is None  # an empty inbox: nothing
    posted = post(receiver, contact_event("create_user", UserID="wangwu"))
    fired = contacts.wait(1, 10)
    assert fired is not None and fired - posted < 1.5  # the NOTIFY, not the 10 s look
    assert contacts.fired[0][1]["events"] == ["change_contact"]
    assert taps.wait(1, 1) is None  # a contact event is not a tap
    posted = post(receiver, card_tap("lisi"))
    assert (taps.wait(1, 10) or 99) - posted < 1.5
    assert len(contacts.fired) == 1  # still waiting, but not new: no second run for the same events


def test_waiting_events_fire_again_and_processed_ones_never(receiver, watch, db_url):
    from wecom.assets import CONTACT_EVENTS

    contacts = watch(CONTACT_EVENTS, poll_interval=0.3, refire_after=1.5)
    post(receiver, contact_event("update_user", UserID="zhaoliu"))
    first = contacts.wait(1, 5)
    again = contacts.wait(2, 5)  # its run failed or was lost: the events still wait
    assert first is not None and again is not None and 1.2 < again - first < 3
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE wecom.callback_events SET processed_at = now()")
    time.sleep(0.5)
    count = len(contacts.fired)
    assert contacts.wait(count + 1, 3) is None  # applied: quiet again


def test_a_lost_notice_or_a_restarted_triggerer_still_finds_what_waits(receiver, watch, db_url):
    """An event stored without a notice (the watcher's connection was down) is found by the look every
    ``poll_interval``; a trigger started afresh (a triggerer restart mid-burst) fires for what waits."""
    from wecom.assets import CONTACT_EVENTS

    post(receiver, contact_event("delete_user", UserID="before"))  # stored while nobody listened
    restarted = watch(CONTACT_EVENTS)
    assert restarted.wait(1, 3) is not None
    contacts = watch(CONTACT_EVENTS, poll_interval=1.0)
    contacts.wait(1, 3)
    with psycopg.connect(db_url, autocommit=True) as conn:  # as stored, without its NOTIFY
        conn.execute(
            "INSERT INTO wecom.callback_events (payload_sha256, event, change_type, userid, payload)"
            " VALUES ('x', 'change_contact', 'delete_user', 'silent', '{}')"
        )
    inserted = time.monotonic()
    fired = contacts.wait(2, 5)
    assert fired is not None and fired - inserted < 2.5


def test_the_trigger_survives_a_warehouse_it_cannot_reach_and_says_so_once(monkeypatch, caplog):
    from wecom.triggers import InboxTrigger

    monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAREHOUSE", f"postgresql://u:{TOKEN}@127.0.0.1:{free_port()}/db")
    watching = Watching(InboxTrigger(events=["change_contact"], poll_interval=0.2))
    time.sleep(1.5)
    watching.stop()  # still running after several failed tries, and stops when cancelled
    warnings = [r.getMessage() for r in caplog.records if "callback inbox" in r.getMessage()]
    assert len(warnings) == 1 and TOKEN not in caplog.text
