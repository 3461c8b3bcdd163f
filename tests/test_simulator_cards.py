"""The simulator's answerable cards, as WeCom keeps them (reference §4.3, §5): what later reminder cards
will be tested against. Real HTTP to the simulator; a click comes back through the real receiver."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
import requests
from conftest import serving, use_connections

from wecom_simulator import SimulatorConfig, WeComSimulator, generate_org

CONFIG = SimulatorConfig()
TOKEN, AES_KEY = "cardsCallbackToken01", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


class Api:
    """message/send and message/update_template_card as the app calls them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.token = requests.get(f"{url}/cgi-bin/gettoken", params={"corpid": CONFIG.corp_id,
                                  "corpsecret": CONFIG.secret}, timeout=5).json()["access_token"]  # fmt: skip

    def post(self, path: str, body: dict) -> dict:
        answer = requests.post(f"{self.url}/cgi-bin/{path}", params={"access_token": self.token},
                               data=json.dumps(body, ensure_ascii=False).encode(), timeout=5)  # fmt: skip
        return answer.json()

    def card(self, touser: str, task_id: str, **overrides: object) -> dict:
        card = {"card_type": "button_interaction", "task_id": task_id, "main_title": {"title": "面试提醒"},
                "button_list": [{"text": "确认参加", "style": 1, "key": "confirm"},
                                {"text": "无法参加", "style": 2, "key": "decline"}], **overrides}  # fmt: skip
        return self.post("message/send", {"touser": touser, "msgtype": "template_card", "agentid": CONFIG.agent_id,
                                          "template_card": card})  # fmt: skip

    def update(self, code: str, userids: list[str], text: str = "已确认 09:41") -> dict:
        return self.post("message/update_template_card", {"userids": userids, "agentid": CONFIG.agent_id,
                                                          "response_code": code, "button": {"replace_name": text}})  # fmt: skip


@pytest.fixture
def sim():
    # 72 hours last 1 s at this time scale (its per-member send limits go with it).
    with WeComSimulator(
        generate_org(users=20, departments=3, seed=7), SimulatorConfig(time_scale=72 * 3600)
    ) as s:
        yield s


@pytest.fixture
def api(sim) -> Api:
    return Api(sim.url)


def member(sim, n: int = 0) -> str:
    return sorted(sim.state.org.users)[n]


def test_a_button_card_needs_a_callback_url_then_returns_a_response_code(sim, api):
    from wecom_simulator import SimulatorAdmin

    admin = SimulatorAdmin(sim.url)
    assert api.card(member(sim), "reminder_1")["errcode"] == 43012  # the app has no callback URL yet
    admin.send_callbacks("http://127.0.0.1:9/wecom/callback", TOKEN, AES_KEY)
    sent = api.card(member(sim), "reminder_1")
    assert sent["errcode"] == 0 and len(sent["response_code"]) == 32 and sent["msgid"]
    [card] = admin.cards()
    assert card["task_id"] == "reminder_1" and card["keys"] == ["confirm", "decline"]
    assert card["shown"] == {member(sim): None}  # the buttons, until updated


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"task_id": "has space"}, 42014),
        ({"task_id": "x" * 129}, 42014),
        ({"task_id": "reminder_1"}, 42014),  # already used by this app
        ({"button_list": [{"text": str(n), "key": f"k{n}"} for n in range(7)]}, 40058),
        ({"button_list": [{"text": "a", "key": "same"}, {"text": "b", "key": "same"}]}, 42039),
        ({"button_list": [{"text": "a"}]}, 42039),
        ({"button_list": [{"key": "a"}]}, 42038),
    ],
)
def test_button_cards_are_validated_as_wecom_does(sim, api, overrides, errcode):
    from wecom_simulator import SimulatorAdmin

    SimulatorAdmin(sim.url).send_callbacks("http://127.0.0.1:9/wecom/callback", TOKEN, AES_KEY)
    assert api.card(member(sim), "reminder_1")["errcode"] == 0
    assert api.card(member(sim), overrides.pop("task_id", "reminder_2"), **overrides)["errcode"] == errcode


def test_each_response_code_updates_once_and_expires(sim, api):
    from wecom_simulator import SimulatorAdmin

    admin = SimulatorAdmin(sim.url)
    admin.send_callbacks("http://127.0.0.1:9/wecom/callback", TOKEN, AES_KEY)
    who = member(sim)
    code = api.card(who, "reminder_1")["response_code"]
    assert api.update(code, [who])["errcode"] == 0
    assert admin.cards()[0]["shown"] == {who: "已确认 09:41"}
    assert api.update(code, [who])["errcode"] == 60140  # single use
    old = api.card(who, "reminder_2")["response_code"]
    time.sleep(1.2)  # 72 hours at this simulator's time scale
    assert api.update(old, [who])["errcode"] == 60140  # expired
    assert api.update("no-such-code", [who])["errcode"] == 60140


def test_a_click_comes_back_as_a_callback_with_a_fresh_code(sim, api, monkeypatch, db_url):
    from wecom.callbacks.receiver import application
    from wecom_simulator import SimulatorAdmin

    use_connections(
        monkeypatch, sim.url, db_url, callback_token=TOKEN, callback_aes_key=AES_KEY, token_store="memory"
    )
    admin = SimulatorAdmin(sim.url)
    who = member(sim)
    with serving(application()) as url:
        admin.send_callbacks(f"{url}/wecom/callback", TOKEN, AES_KEY)
        sent = api.card(who, "reminder_7")
        assert admin.click(who, "reminder_7", "nope")["errcode"] == 42017
        assert admin.click(member(sim, 1), "reminder_7", "confirm")["errcode"] == 42016  # not a recipient
        clicked = admin.click(who, "reminder_7", "confirm")
        deadline = time.monotonic() + 10
        while not admin.callbacks()["idle"] and time.monotonic() < deadline:
            time.sleep(0.05)
    with psycopg.connect(db_url) as conn:
        [(event, userid, payload)] = conn.execute(
            "SELECT event, userid, payload FROM wecom.callback_events WHERE event = 'template_card_event'"
        ).fetchall()
    assert (event, userid) == ("template_card_event", who)
    assert (payload["TaskId"], payload["EventKey"], payload["CardType"]) == ("reminder_7", "confirm",
                                                                             "button_interaction")  # fmt: skip
    assert payload["ResponseCode"] == clicked["response_code"] != sent["response_code"]
    assert api.update(payload["ResponseCode"], [who], "已确认")["errcode"] == 0  # the click's own code works
    assert admin.click(who, "reminder_7", "decline")["errcode"] == 42018  # the buttons are gone
