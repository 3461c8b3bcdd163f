"""A WeCom stand-in speaking the real wire format over real HTTP, with inspection and fault control.

Errors are HTTP 200 + errcode as WeCom sends them. Per-member sending limits drop messages silently,
as WeCom does, and count the drops so tests can prove they never happen. Admin endpoints live under
``/_admin/`` (see ``SimulatorAdmin``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wecom_simulator.calendars import Calendars
from wecom_simulator.callbacks import CallbackFaults, CallbackSender, events_for
from wecom_simulator.cards import Cards, card_event
from wecom_simulator.org import Org, generate_org

TEXT_LIMIT = 2048
ROBOT_MARKDOWN_LIMIT = 4096


@dataclass
class SimulatorConfig:
    corp_id: str = "wwsimcorp0001"
    secret: str = "sim-app-secret-0123456789"
    agent_id: int = 1000002
    webhook_keys: tuple[str, ...] = ("sim-robot-key-0001",)
    token_lifetime: int = 7200
    # WeCom's windows divided by this: 60 turns "30 a minute" into "30 a second" for fast tests.
    time_scale: float = 1.0
    per_minute: int = 30
    per_hour: int = 1000
    robot_per_minute: int = 20
    unlicensed: tuple[str, ...] = ()
    # Requests in flight on one API beyond this get 45033, as WeCom answers too much concurrency.
    max_inflight_per_api: int = 20
    # False: every oa/calendar/* and oa/schedule/* call answers 48002, as for an app not added under the
    # admin console's 日程 → 可调用接口的应用. Toggled at run time through /_admin/schedule_permission.
    schedule_allowed: bool = True


@dataclass
class Fault:
    """One injected misbehaviour. ``count`` -1 means until cleared."""

    # errcode | http502 | reset | latency: before the API runs (nothing happened);
    # truncated | lost_answer: after it ran (the change is made, the caller cannot know).
    kind: str
    path: str = "*"  # API path under /cgi-bin/, or "*"
    count: int = 1
    errcode: int = -1
    latency_ms: float = 0.0
    match: dict[str, str] = field(default_factory=dict)  # query parameters that must match

    def applies(self, path: str, query: dict[str, str]) -> bool:
        if self.count == 0 or (self.path != "*" and self.path != path):
            return False
        return all(query.get(k) == str(v) for k, v in self.match.items())


class SimulatorState:
    """Everything the simulator knows; guarded by one lock."""

    def __init__(self, org: Org, config: SimulatorConfig) -> None:
        self.org = org
        self.config = config
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.revoked: set[str] = set()
        self.calls: dict[str, int] = {}
        self.faults: list[Fault] = []
        self.latency_ms = 0.0
        self.faults_fired = 0
        self.messages: list[dict[str, Any]] = []  # one row per delivered (message, recipient)
        self.drops: list[dict[str, Any]] = []  # silently dropped by the per-member limits
        self.duplicates = 0  # requests absorbed by the duplicate check
        self.sent_bodies: dict[str, tuple[float, str]] = {}  # body hash -> (time, msgid)
        self.msgids: dict[str, float] = {}
        self.recalled: set[str] = set()
        self.member_sends: dict[str, deque[float]] = {}
        self.robot_sends: dict[str, deque[float]] = {}
        self.robot_messages: list[dict[str, Any]] = []
        self.disabled_robots: set[str] = set()
        self.inflight: dict[str, int] = {}
        self.concurrency_rejections = 0
        self._next_msgid = 0
        self.callbacks: CallbackSender | None = None  # set through /_admin/callbacks
        self.cards = Cards(config.time_scale)
        self.calendars = Calendars()
        self.schedule_allowed = config.schedule_allowed

    # -- bookkeeping --------------------------------------------------------------------------

    def count_call(self, path: str) -> None:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1

    def enter(self, path: str) -> bool:
        """Count a request in flight on ``path``; False (answer 45033) when too many already are."""
        with self.lock:
            if self.inflight.get(path, 0) >= self.config.max_inflight_per_api:
                self.concurrency_rejections += 1
                return False
            self.inflight[path] = self.inflight.get(path, 0) + 1
            return True

    def leave(self, path: str) -> None:
        with self.lock:
            self.inflight[path] -= 1

    def take_fault(self, path: str, query: dict[str, str]) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.applies(path, query):
                    if fault.count > 0:
                        fault.count -= 1
                    self.faults_fired += 1
                    return fault
            self.faults = [f for f in self.faults if f.count != 0]
        return None

    def new_msgid(self) -> str:
        self._next_msgid += 1
        return f"sim{self._next_msgid:010d}{secrets.token_hex(4)}"

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "delivered": len(self.messages),
                "silent_drops": len(self.drops),
                "duplicates_absorbed": self.duplicates,
                "faults_fired": self.faults_fired,
                "faults_pending": len([f for f in self.faults if f.count != 0]),
                "concurrency_rejections": self.concurrency_rejections,
                "robot_messages": len(self.robot_messages),
                "calendars": len(self.calendars.calendars),
                "schedules": len(self.calendars.schedules),
                "tokens_issued": len(self.tokens),
                "users": len(self.org.users),
                "departments": len(self.org.departments),
            }

    def reset_records(self) -> None:
        with self.lock:
            self.calls.clear()
            self.messages.clear()
            self.drops.clear()
            self.robot_messages.clear()
            self.sent_bodies.clear()
            self.member_sends.clear()
            self.robot_sends.clear()
            self.duplicates = 0
            self.concurrency_rejections = 0
            self.faults_fired = 0
            self.faults.clear()
            self.latency_ms = 0.0
            self.calendars.clear()
            self.schedule_allowed = self.config.schedule_allowed

    # -- tokens -------------------------------------------------------------------------------

    def check_token(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return err(41001, "access_token missing")
        with self.lock:
            expiry = self.tokens.get(token)
            if expiry is None or token in self.revoked:
                return err(40014, f"invalid access_token, hint: [{secrets.token_hex(4)}]")
            if time.monotonic() >= expiry:
                return err(42001, "access_token expired")
        return None

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.config.token_lifetime
        return token

    def revoke_all(self) -> int:
        with self.lock:
            self.revoked.update(self.tokens)
            return len(self.tokens)

    # -- sending limits -----------------------------------------------------------------------

    def admit(self, userid: str, now: float) -> bool:
        """Record a send to one member if WeCom's per-member windows allow it (caller holds lock)."""
        minute = 60.0 / self.config.time_scale
        hour = 3600.0 / self.config.time_scale
        window = self.member_sends.setdefault(userid, deque())
        while window and window[0] <= now - hour:
            window.popleft()
        in_minute = sum(1 for t in window if t > now - minute)
        if in_minute >= self.config.per_minute or len(window) >= self.config.per_hour:
            return False
        window.append(now)
        return True


def err(errcode: int, errmsg: str) -> dict[str, Any]:
    return {
        "errcode": errcode,
        "errmsg": f"{errmsg}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}",
    }


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The request's JSON object; None when the body is no JSON object (WeCom answers 40058)."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _byte_len(value: Any) -> int:
    return len(str(value or "").encode("utf-8"))


class WeComApi:
    """The /cgi-bin/ endpoints, as pure functions of the state and the request."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes) -> dict[str, Any]:
        if path == "gettoken":
            return self.gettoken(query)
        if path == "webhook/send":
            return self.webhook_send(query, raw)
        problem = self.state.check_token(query.get("access_token"))
        if problem:
            return problem
        routes = {
            ("GET", "department/list"): self.department_list,
            ("GET", "department/simplelist"): self.department_simplelist,
            ("GET", "user/list"): self.user_list,
            ("GET", "user/simplelist"): self.user_simplelist,
            ("GET", "user/get"): self.user_get,
            ("GET", "department/get"): self.department_get,
        }
        if (method, path) in routes:
            return routes[(method, path)](query)
        posts = {
            "user/list_id": self.user_list_id,
            "message/send": self.message_send,
            "message/recall": self.message_recall,
            "message/update_template_card": self.update_template_card,
        }
        if method == "POST" and path in posts:
            body = _json_object(raw)
            return err(40058, "invalid json") if body is None else posts[path](body, raw)
        if method == "POST" and path in Calendars.ROUTES:
            return self.calendar_api(path, raw)
        return err(404, f"unknown api {method} {path}")

    def calendar_api(self, path: str, raw: bytes) -> dict[str, Any]:
        """``oa/calendar/*`` and ``oa/schedule/*`` (calendars.py), behind the app's schedule permission."""
        with self.state.lock:
            if not self.state.schedule_allowed:
                return err(48002, "api forbidden")
        body = _json_object(raw)
        if body is None:
            return err(40058, "invalid json")
        with self.state.lock:
            answer = self.state.calendars.call(path, body, self.state.org, self.state.config.agent_id)
        return err(404, f"unknown api POST {path}") if answer is None else answer

    def gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        config = self.state.config
        if query.get("corpid") != config.corp_id:
            return err(40013, "invalid corpid")
        if query.get("corpsecret") != config.secret:
            return err(40001, "invalid credential")
        return ok(access_token=self.state.issue_token(), expires_in=config.token_lifetime)

    def _department_ids(self, query: dict[str, str]) -> list[int] | dict[str, Any]:
        org = self.state.org
        if "id" in query and query["id"] != "":
            try:
                root = int(query["id"])
            except ValueError:
                return err(60003, "department not found")
            if root not in org.departments:
                return err(60003, "department not found")
            return org.subtree(root)
        return org.subtree(1)

    def department_list(self, query: dict[str, str]) -> dict[str, Any]:
        with self.state.lock:
            ids = self._department_ids(query)
            if isinstance(ids, dict):
                return ids
            return ok(department=[dict(self.state.org.departments[i]) for i in ids])

    def department_simplelist(self, query: dict[str, str]) -> dict[str, Any]:
        with self.state.lock:
            ids = self._department_ids(query)
            if isinstance(ids, dict):
                return ids
            departments = self.state.org.departments
            return ok(
                department_id=[
                    {"id": i, "parentid": departments[i]["parentid"], "order": departments[i]["order"]}
                    for i in ids
                ]
            )

    def _members(self, query: dict[str, str]) -> list[dict[str, Any]] | dict[str, Any]:
        try:
            dept_id = int(query.get("department_id", ""))
        except ValueError:
            return err(60003, "department not found")
        if dept_id not in self.state.org.departments:
            return err(60003, "department not found")
        return self.state.org.members_of(dept_id)

    def user_list(self, query: dict[str, str]) -> dict[str, Any]:
        with self.state.lock:
            members = self._members(query)
            if isinstance(members, dict):
                return members
            return ok(userlist=[self.state.org.wire_user(u) for u in members])

    def user_get(self, query: dict[str, str]) -> dict[str, Any]:
        """One member, as user/list lists it; 60111 when WeCom does not know the userid."""
        with self.state.lock:
            user = self.state.org.users.get(str(query.get("userid", "")).lower())
            if user is None:
                return err(60111, "userid not found")
            return ok(**self.state.org.wire_user(user))

    def department_get(self, query: dict[str, str]) -> dict[str, Any]:
        """One department (department/get answers {"department": {...}}); 60123 when it is gone."""
        with self.state.lock:
            try:
                department = self.state.org.departments.get(int(query.get("id", "")))
            except ValueError:
                department = None
            if department is None:
                return err(60123, "invalid party id")
            return ok(department=dict(department))

    def user_simplelist(self, query: dict[str, str]) -> dict[str, Any]:
        with self.state.lock:
            members = self._members(query)
            if isinstance(members, dict):
                return members
            return ok(
                userlist=[
                    {"userid": u["userid"], "name": u["name"], "department": u["department"]} for u in members
                ]
            )

    def user_list_id(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        limit = int(body.get("limit") or 1000)
        start = int(body.get("cursor") or 0)
        with self.state.lock:
            rows = [
                {"userid": u["userid"], "department": d}
                for u in self.state.org.users.values()
                for d in u["department"]
            ]
        page = rows[start : start + min(limit, 10000)]
        cursor = str(start + len(page)) if start + len(page) < len(rows) else ""
        return ok(next_cursor=cursor, dept_user=page)

    def message_send(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        config = self.state.config
        if body.get("agentid") != config.agent_id:
            return err(301002, "agentid is not the app of this access_token")
        problem = self._validate_content(body)
        if problem:
            return problem
        users = [u for u in str(body.get("touser") or "").split("|") if u]
        parties = [p for p in str(body.get("toparty") or "").split("|") if p]
        tags = [t for t in str(body.get("totag") or "").split("|") if t]
        if not (users or parties or tags):
            return err(82001, "no recipient")
        if len(users) > 1000 or len(parties) > 100 or len(tags) > 100:
            return err(82002, "too many recipients")
        now = time.monotonic()
        with self.state.lock:
            org = self.state.org
            if body.get("enable_duplicate_check"):
                interval = float(body.get("duplicate_check_interval") or 1800)
                digest = hashlib.sha256(raw).hexdigest()
                seen = self.state.sent_bodies.get(digest)
                if seen and now - seen[0] < interval:
                    self.state.duplicates += 1
                    return ok(
                        invaliduser="", invalidparty="", invalidtag="", unlicenseduser="", msgid=seen[1]
                    )
            recipients: dict[str, None] = {}
            invalid_users, unlicensed = [], []
            for userid in users:
                key = userid.lower()
                if key == "@all":
                    recipients.update(dict.fromkeys(org.users))
                elif key not in org.users:
                    invalid_users.append(key)
                elif key in {u.lower() for u in config.unlicensed}:
                    unlicensed.append(key)
                else:
                    recipients[key] = None
            invalid_parties = []
            for party in parties:
                try:
                    members = org.members_of(int(party))
                except ValueError:
                    members = []
                if not members and (not party.isdigit() or int(party) not in org.departments):
                    invalid_parties.append(party)
                recipients.update(dict.fromkeys(u["userid"].lower() for u in members))
            invalid_tags = list(tags)  # the simulator knows no tags
            if not recipients:
                return err(81013, "user & party & tag all invalid") | {
                    "invaliduser": "|".join(invalid_users),
                    "invalidparty": "|".join(invalid_parties),
                    "invalidtag": "|".join(invalid_tags),
                    "unlicenseduser": "|".join(unlicensed),
                }
            msgid = self.state.new_msgid()
            self.state.msgids[msgid] = now
            if body.get("enable_duplicate_check"):
                self.state.sent_bodies[hashlib.sha256(raw).hexdigest()] = (now, msgid)
            content = _content_of(body)
            extra = {}
            if (
                body.get("msgtype") == "template_card"
                and body["template_card"].get("card_type") != "text_notice"
            ):
                extra["response_code"] = self.state.cards.sent(body["template_card"], list(recipients), now)
            for userid in recipients:
                row = {
                    "msgid": msgid,
                    "userid": userid,
                    "msgtype": body.get("msgtype"),
                    "content": content,
                    "at": time.time(),
                }
                if self.state.admit(userid, now):
                    self.state.messages.append(row)
                else:
                    self.state.drops.append(row)
        return ok(
            invaliduser="|".join(invalid_users),
            invalidparty="|".join(invalid_parties),
            invalidtag="|".join(invalid_tags),
            unlicenseduser="|".join(unlicensed),
            msgid=msgid,
            **extra,
        )

    def _validate_content(self, body: dict[str, Any]) -> dict[str, Any] | None:
        msgtype = body.get("msgtype")
        section = body.get(msgtype) if isinstance(msgtype, str) else None
        if not isinstance(section, dict):
            return err(40008, "invalid message type")
        if msgtype in ("text", "markdown"):
            content = section.get("content")
            if not content:
                return err(44004, "empty content")
            if _byte_len(content) > TEXT_LIMIT:
                return err(45002, "content size out of limit")
        elif msgtype == "textcard":
            if not section.get("title") or not section.get("description") or not section.get("url"):
                return err(44004, "empty content")
            if _byte_len(section["title"]) > 128 or _byte_len(section["description"]) > 512:
                return err(45002, "content size out of limit")
        elif msgtype == "news":
            articles = section.get("articles")
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                return err(40058, "articles must hold 1 to 8 items")
        elif msgtype == "template_card" and section.get("card_type") == "button_interaction":
            with self.state.lock:
                return self.state.cards.validate(
                    section, callbacks_configured=self.state.callbacks is not None
                )
        elif msgtype == "template_card":
            if section.get("card_type") != "text_notice" or not isinstance(section.get("main_title"), dict):
                return err(40058, "only text_notice and button_interaction cards are supported")
        else:
            return err(40008, "invalid message type")
        return None

    def update_template_card(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        if body.get("agentid") != self.state.config.agent_id:
            return err(42015, "the card was not sent by this app")
        with self.state.lock:
            return self.state.cards.update(body, time.monotonic())

    def message_recall(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        msgid = body.get("msgid")
        with self.state.lock:
            sent = self.state.msgids.get(msgid)
            if sent is None or time.monotonic() - sent > 86400 / self.state.config.time_scale:
                return err(40093, "invalid msgid or recall window passed")
            self.state.recalled.add(msgid)
        return ok()

    def webhook_send(self, query: dict[str, str], raw: bytes) -> dict[str, Any]:
        key = query.get("key", "")
        config = self.state.config
        if key not in config.webhook_keys:
            return err(93000, "invalid webhook url")
        if key in self.state.disabled_robots:
            return err(93004, "webhook disabled")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return err(40058, "invalid json")
        msgtype = body.get("msgtype") if isinstance(body, dict) else None
        section = body.get(msgtype) if isinstance(msgtype, str) else None
        if not isinstance(section, dict):
            return err(40008, "invalid message type")
        limit = ROBOT_MARKDOWN_LIMIT if msgtype == "markdown" else TEXT_LIMIT
        if msgtype in ("text", "markdown"):
            if not section.get("content"):
                return err(44004, "empty content")
            if _byte_len(section.get("content")) > limit:
                return err(45002, "content size out of limit")
        now = time.monotonic()
        with self.state.lock:
            window = self.state.robot_sends.setdefault(key, deque())
            while window and window[0] <= now - 60.0 / config.time_scale:
                window.popleft()
            if len(window) >= config.robot_per_minute:
                return err(45009, "api freq out of limit")
            window.append(now)
            self.state.robot_messages.append(
                {
                    "key_hash": hashlib.sha256(key.encode()).hexdigest()[:12],
                    "msgtype": msgtype,
                    "content": _content_of(body),
                    "at": time.time(),
                }
            )
        return ok()


def _content_of(body: dict[str, Any]) -> str:
    msgtype = body.get("msgtype")
    section = body.get(msgtype) or {}
    if msgtype in ("text", "markdown"):
        return str(section.get("content", ""))
    if msgtype == "textcard":
        return f"{section.get('title', '')}\n{section.get('description', '')}"
    if msgtype == "news":
        return "\n".join(str(a.get("title", "")) for a in section.get("articles", []))
    if msgtype == "template_card":
        rows = [
            f"{r.get('keyname', '')}: {r.get('value', '')}"
            for r in section.get("horizontal_content_list") or []
        ]
        return "\n".join([str((section.get("main_title") or {}).get("title", "")), *rows])
    return ""


class SimulatorAdminApi:
    """``/_admin/``: inspect what was delivered and inject faults or org changes."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes) -> dict[str, Any]:
        body = json.loads(raw.decode("utf-8")) if raw else {}
        state = self.state
        if path == "stats":
            return state.stats()
        if path == "messages":
            with state.lock:
                rows = list(state.messages)
            userid = query.get("userid")
            return {"messages": [r for r in rows if not userid or r["userid"] == userid.lower()]}
        if path == "drops":
            with state.lock:
                return {"drops": list(state.drops)}
        if path == "robot_messages":
            with state.lock:
                return {"messages": list(state.robot_messages)}
        if path == "faults" and method == "POST":
            faults = body.get("faults", [body])
            with state.lock:
                state.faults.extend(Fault(**f) for f in faults)
            return {"added": len(faults)}
        if path == "faults" and method == "DELETE":
            with state.lock:
                state.faults.clear()
            return {"cleared": True}
        if path == "latency":
            with state.lock:
                state.latency_ms = float(body.get("ms", 0))
            return {"latency_ms": state.latency_ms}
        if path == "revoke":
            return {"revoked": state.revoke_all()}
        if path == "credentials":  # what a leak scan must not find anywhere outside the token table
            with state.lock:
                tokens = list(state.tokens)
            return {"secret": state.config.secret, "webhook_keys": list(state.config.webhook_keys),
                    "tokens": tokens}  # fmt: skip
        if path == "reset":
            state.reset_records()
            return {"reset": True}
        if path == "robots" and method == "POST":
            with state.lock:
                if body.get("disabled"):
                    state.disabled_robots.add(body["key"])
                else:
                    state.disabled_robots.discard(body["key"])
            return {"ok": True}
        if path == "org" and method == "GET":
            with state.lock:
                return {
                    "departments": list(state.org.departments.values()),
                    "users": [state.org.wire_user(u) for u in state.org.users.values()],
                }
        if path == "org" and method == "POST":
            with state.lock:
                applied, events = [], []
                for op in body.get("ops", []):
                    # Leader flags before the change, of the members it can touch: only when callbacks go out
                    # (a 100k-member org's batch of changes must not walk every member for each).
                    touched = state.org.touched_by(op) if state.callbacks is not None else set()
                    led_before = state.org.led(touched)
                    applied.append(mutate(state.org, op))
                    events += events_for(op, state.org, led_before)
                state.org.changed()
            if state.callbacks is not None:
                state.callbacks.emit(events)
            return {"applied": applied}
        if path == "callbacks" and method == "POST":
            faults = CallbackFaults(**body.get("faults", {}))
            with state.lock:
                state.callbacks = CallbackSender(body["url"], body["token"], body["aes_key"], state.config.corp_id,
                                                 faults)  # fmt: skip
            return {"ok": True}
        if path == "click" and method == "POST":  # a member taps a button: WeCom posts the callback
            with state.lock:
                clicked = state.cards.click(str(body["userid"]).lower(), body["task_id"], body["key"],
                                            time.monotonic())  # fmt: skip
                sender = state.callbacks
            if isinstance(clicked, dict):
                return clicked
            code, _ = clicked
            if sender is None:
                return {"error": "no callback URL configured: POST /_admin/callbacks first"}
            sender.emit_messages([card_event(state.config.corp_id, state.config.agent_id, str(body["userid"]),
                                             body["task_id"], body["key"], code)])  # fmt: skip
            return {"ok": True, "response_code": code}
        if path == "calendar" and method == "GET":  # one member's calendar, as they see it now
            with state.lock:
                return {"userid": query["userid"], "schedules": state.calendars.view(query["userid"])}
        if path == "schedules" and method == "GET":
            include_deleted = query.get("include_deleted", "1") not in ("0", "false", "False")
            with state.lock:
                return {"schedules": state.calendars.all_schedules(include_deleted)}
        if path == "calendars" and method == "GET":
            with state.lock:
                return {"calendars": state.calendars.all_calendars()}
        if path == "schedule_permission" and method == "POST":
            with state.lock:
                state.schedule_allowed = bool(body["allowed"])
            return {"schedule_allowed": state.schedule_allowed}
        if path == "schedule_response" and method == "POST":
            with state.lock:
                return state.calendars.respond(str(body["schedule_id"]), str(body["userid"]),
                                               int(body["response_status"]))  # fmt: skip
        if path == "cards" and method == "GET":  # what each recipient sees now
            with state.lock:
                return {"cards": state.cards.view()}
        if path == "callbacks" and method == "GET":
            sender = state.callbacks
            return {"configured": sender is not None, "idle": sender.idle() if sender else True,
                    **(sender.stats if sender else {}), "acknowledged": sender.acknowledged if sender else [],
                    "given_up": sender.given_up if sender else []}  # fmt: skip
        return {"error": f"unknown admin path {method} {path}"}


def mutate(org: Org, op: dict[str, Any]) -> str:
    """Apply one org change, as an admin would make it in the WeCom console."""
    kind = op["op"]
    if kind == "rename_department":
        org.departments[int(op["id"])]["name"] = op["name"]
    elif kind == "move_department":
        org.departments[int(op["id"])]["parentid"] = int(op["parentid"])
    elif kind == "add_department":
        dept = {"name_en": "", "order": 0, "department_leader": [], **op["department"]}
        org.departments[int(dept["id"])] = dept
    elif kind == "remove_department":
        org.departments.pop(int(op["id"]), None)
    elif kind == "set_leader":
        dept_id = int(op["department_id"])
        org.departments[dept_id]["department_leader"] = list(op["userids"])
        leaders = {u.lower() for u in op["userids"]}
        for user in org.members_of(dept_id):
            index = user["department"].index(dept_id)
            user["is_leader_in_dept"][index] = int(user["userid"].lower() in leaders)
    elif kind == "move_user":  # moved out of every department it led: it leads none now
        org.replace_leader(op["userid"])
        user = org.users[op["userid"].lower()]
        departments = [int(d) for d in op["departments"]]
        user["department"] = departments
        user["order"] = [0 for _ in departments]
        user["is_leader_in_dept"] = [0 for _ in departments]
        user["main_department"] = departments[0]
    elif kind == "update_user":
        org.users[op["userid"].lower()].update(op["fields"])
    elif kind == "remove_user":
        org.users.pop(op["userid"].lower(), None)
        org.replace_leader(op["userid"])
    elif kind == "add_user":
        user = {"order": [], "is_leader_in_dept": [], "status": 1, **op["user"]}
        user.setdefault("order", [0 for _ in user["department"]])
        if not user["order"]:
            user["order"] = [0 for _ in user["department"]]
        if not user["is_leader_in_dept"]:
            user["is_leader_in_dept"] = [0 for _ in user["department"]]
        user.setdefault("main_department", user["department"][0])
        org.users[user["userid"].lower()] = user
    elif kind == "change_userid":  # a userid WeCom generated may be changed once
        user = org.users.pop(op["userid"].lower())
        user["userid"] = op["new_userid"]
        org.users[op["new_userid"].lower()] = user
        org.replace_leader(op["userid"], op["new_userid"])
    else:
        raise ValueError(f"unknown org op {kind!r}")
    org.changed()
    return kind


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # request URLs carry tokens: log nothing
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        state = self.server.state
        if split.path.startswith("/_admin/"):
            try:
                self._reply(200, self.server.admin.handle(method, split.path[len("/_admin/") :], query, raw))
            except Exception as exc:  # noqa: BLE001 - admin errors go back to the test that caused them
                self._reply(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        if not split.path.startswith("/cgi-bin/"):
            self._reply(404, {"errcode": 404, "errmsg": "not found"})
            return
        path = split.path[len("/cgi-bin/") :]
        state.count_call(path)
        if not state.enter(path):
            self._reply(200, err(45033, "api concurrent out of limit"))
            return
        try:
            self._serve(method, path, query, raw)
        finally:
            state.leave(path)

    def _serve(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        state = self.server.state
        if state.latency_ms:
            time.sleep(state.latency_ms / 1000)
        fault = state.take_fault(path, query)
        if fault is not None:
            if fault.kind == "latency":
                time.sleep(fault.latency_ms / 1000)
            elif fault.kind == "http502":
                self._raw(
                    502,
                    b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                    "text/html",
                )
                return
            elif fault.kind == "reset":
                self._reset()
                return
            elif fault.kind == "truncated":
                body = json.dumps(
                    self.server.api.handle(method, path, query, raw), ensure_ascii=False
                ).encode()
                self._raw(200, body[: max(1, len(body) // 2)], "application/json")
                return
            elif fault.kind == "lost_answer":  # the API runs (a schedule IS made), then the line drops
                self.server.api.handle(method, path, query, raw)
                self._reset()
                return
            elif fault.kind == "errcode":
                self._reply(200, err(fault.errcode, "injected fault"))
                return
        self._reply(200, self.server.api.handle(method, path, query, raw))

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self._raw(
            status, json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8"
        )

    def _raw(self, status: int, payload: bytes, content_type: str) -> None:
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode("ascii")
        self.wfile.write(head + payload)  # one write: one segment for small answers

    def _reset(self) -> None:
        """Close with RST, as a dropped connection looks to the client."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        self.state = state
        self.api = WeComApi(state)
        self.admin = SimulatorAdminApi(state)
        super().__init__(address, _Handler)


class WeComSimulator:
    """Start and stop a simulator in this process (tests): ``with WeComSimulator() as sim: sim.url``."""

    def __init__(
        self,
        org: Org | None = None,
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = SimulatorState(org or generate_org(), config or SimulatorConfig())
        self._server = _Server((host, port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WeComSimulator:
        # A short poll interval: stop() (shutdown) returns within 50 ms instead of the default 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="wecom-simulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WeComSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
