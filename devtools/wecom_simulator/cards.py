"""Template cards as WeCom keeps them: ``button_interaction`` validated on send, a ``response_code`` per
send and per click (one ``message/update_template_card`` call each, valid 72 hours), clicks that come
back as ``template_card_event`` callbacks, and each recipient's current view of the card.

Written from WeCom's description (reference §4.3, §5), not from the project's code: a stand-in that
shared the code under test would agree with its mistakes.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

TASK_ID = re.compile(r"[A-Za-z0-9_\-@]{1,128}")
MAX_BUTTONS = 6
MAX_KEY_BYTES = 1024
CODE_LIFETIME = 72 * 3600.0  # seconds, divided by the simulator's time scale


def _err(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}


@dataclass
class Card:
    task_id: str
    card: dict[str, Any]
    recipients: list[str]
    # What each recipient sees now: None = the buttons; else the text that replaced them.
    shown: dict[str, str | None] = field(default_factory=dict)
    clicks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [b.get("key") for b in self.card.get("button_list", []) if not b.get("type")]


@dataclass
class Code:
    task_id: str
    issued: float
    userid: str | None  # None: the code from the send, good for any recipient
    used: bool = False


class Cards:
    """Cards sent by the app, by task_id; the caller holds the simulator's lock."""

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale
        self.by_task: dict[str, Card] = {}
        self.codes: dict[str, Code] = {}

    def validate(self, section: dict[str, Any], callbacks_configured: bool) -> dict[str, Any] | None:
        """WeCom's answer to an invalid ``button_interaction`` card, or None."""
        task_id = section.get("task_id")
        if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
            return _err(42014, "invalid task_id: 1-128 of letters, digits and _-@")
        if task_id in self.by_task:
            return _err(42014, "invalid task_id: already used by this app")
        if not isinstance(section.get("main_title"), dict) or not section["main_title"].get("title"):
            return _err(44004, "main_title.title is required")
        buttons = section.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
            return _err(40058, f"button_list must hold 1 to {MAX_BUTTONS} buttons")
        keys = []
        for button in buttons:
            if not isinstance(button, dict) or not button.get("text"):
                return _err(42038, "button_list.text missing")
            if button.get("type") == 1:
                if not button.get("url"):
                    return _err(40058, "button_list.url missing for a link button")
                continue
            key = button.get("key")
            if not isinstance(key, str) or not key or len(key.encode()) > MAX_KEY_BYTES:
                return _err(42039, "button_list.key missing or invalid")
            keys.append(key)
        if len(keys) != len(set(keys)):
            return _err(42039, "button_list.key must not repeat")
        if not callbacks_configured:
            return _err(43012, "应用需配置回调url")
        return None

    def sent(self, section: dict[str, Any], recipients: list[str], now: float) -> str:
        card = Card(section["task_id"], section, recipients, dict.fromkeys(recipients))
        self.by_task[card.task_id] = card
        return self._issue(card.task_id, None, now)

    def click(self, userid: str, task_id: str, key: str, now: float) -> tuple[str, Card] | dict[str, Any]:
        """A recipient taps a button: the response code its callback carries, or WeCom's error."""
        card = self.by_task.get(task_id)
        if card is None or userid not in card.shown:
            return _err(42016, "no such card for this member")
        if key not in card.keys:
            return _err(42017, "no such button")
        if card.shown[userid] is not None:
            return _err(42018, "the buttons were already replaced: nothing to click")
        card.clicks.append({"userid": userid, "key": key, "at": time.time()})
        return self._issue(task_id, userid, now), card

    def update(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        """``message/update_template_card`` with ``button.replace_name`` (one call per code)."""
        code = self.codes.get(str(body.get("response_code")))
        if code is None or code.used or now - code.issued > CODE_LIFETIME / self.time_scale:
            return _err(60140, "invalid response_code (used, expired or unknown)")
        card = self.by_task.get(code.task_id)
        if card is None:
            return _err(42016, "task_id does not exist")
        replace = (body.get("button") or {}).get("replace_name")
        if not isinstance(replace, str) or not replace:
            return _err(40058, "button.replace_name is required")
        userids = [str(u).lower() for u in body.get("userids") or []]
        targets = list(card.shown) if body.get("atall") else [u for u in userids if u in card.shown]
        if not targets:
            return _err(81013, "user & party & tag all invalid")
        code.used = True
        for userid in targets:
            card.shown[userid] = replace
        return {"errcode": 0, "errmsg": "ok", "invaliduser": [u for u in userids if u not in card.shown]}

    def view(self) -> list[dict[str, Any]]:
        return [
            {"task_id": c.task_id, "title": c.card["main_title"]["title"], "keys": c.keys, "shown": dict(c.shown),
             "clicks": list(c.clicks), "card": c.card}
            for c in self.by_task.values()
        ]  # fmt: skip

    def _issue(self, task_id: str, userid: str | None, now: float) -> str:
        code = secrets.token_hex(16)
        self.codes[code] = Code(task_id, now, userid)
        return code


def card_event(corp_id: str, agent_id: int, userid: str, task_id: str, key: str, response_code: str) -> bytes:
    """The ``template_card_event`` WeCom posts when a member taps a button."""
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{userid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
        f"<TaskId><![CDATA[{task_id}]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
        f"<ResponseCode><![CDATA[{response_code}]]></ResponseCode><AgentID>{agent_id}</AgentID></xml>"
    ).encode()
