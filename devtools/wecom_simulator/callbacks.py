"""Callbacks as WeCom sends them: every org change becomes ``change_contact`` events (ids only, the
2022-08-15 form), sealed in WeCom's envelope and POSTed to the configured URL by a background sender that
retries a delivery that failed or took over 5 s, up to 3 times. Faults: drop, duplicate, reorder, delay.

The envelope is written here again, from WeCom's description, not imported from ``wecom``: a stand-in that
shared the code under test would agree with its mistakes. Tests check both against Tencent's vectors.
"""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import random
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wecom_simulator.org import Org


def seal(
    message: bytes, token: str, aes_key: str, corp_id: str, timestamp: str, nonce: str
) -> tuple[str, str]:
    """(msg_signature, Encrypt) for one message: AES-256-CBC, IV = key[:16], PKCS#7 to 32-byte blocks."""
    key = base64.b64decode(aes_key + "=")
    plain = os.urandom(16) + struct.pack(">I", len(message)) + message + corp_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypted = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest(), encrypted


def contact_event(corp_id: str, change_type: str, **ids: Any) -> bytes:
    fields = "".join(
        f"<{name}><![CDATA[{value}]]></{name}>" for name, value in ids.items() if value is not None
    )
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[change_contact]]></Event><ChangeType>{change_type}</ChangeType>{fields}</xml>"
    ).encode()


def events_for(op: dict[str, Any], org: Org, led_before: dict[str, frozenset[int]]) -> list[tuple[str, dict]]:
    """The change_contact events WeCom sends for one admin change, as it sends them since 2022-08-15:
    ids only, ``update_party`` only when a department's parent changes (a rename is not announced), and a
    change of a department's leaders as ``update_user`` for each member whose ``IsLeaderInDept`` changed."""
    kind = op["op"]
    events: list[tuple[str, dict[str, Any]]] = []
    if kind == "move_department":
        events.append(("update_party", {"Id": op["id"], "ParentId": op["parentid"]}))
    elif kind == "add_department":
        events.append(
            ("create_party", {"Id": op["department"]["id"], "ParentId": op["department"].get("parentid")})
        )
    elif kind == "remove_department":
        events.append(("delete_party", {"Id": op["id"]}))
    elif kind in ("move_user", "update_user"):
        events.append(("update_user", _member_fields(org, op["userid"])))
    elif kind == "remove_user":
        events.append(("delete_user", {"UserID": op["userid"]}))
    elif kind == "add_user":
        events.append(("create_user", _member_fields(org, op["user"]["userid"])))
    elif kind == "change_userid":
        events.append(("update_user", {"UserID": op["userid"], "NewUserID": op["new_userid"]}))
    announced = {ids.get("UserID", "").lower() for _, ids in events} | {
        ids.get("NewUserID", "").lower() for _, ids in events
    }
    led_now = org.led(set(led_before))
    for key in sorted(led_before.keys() & led_now.keys()):  # leaders gained or lost, not yet announced
        if led_before[key] != led_now[key] and key not in announced:
            events.append(("update_user", _member_fields(org, key)))
    return events


def _member_fields(org: Org, userid: str) -> dict[str, Any]:
    """What an ``update_user`` or ``create_user`` carries: the ids, the departments and the leader flags."""
    user = org.users.get(userid.lower())
    if user is None:
        return {"UserID": userid}
    return {
        "UserID": user["userid"],
        "Department": ",".join(str(d) for d in user["department"]),
        "IsLeaderInDept": ",".join(str(flag) for flag in user["is_leader_in_dept"]),
    }


@dataclass
class CallbackFaults:
    drop: float = 0.0  # share of events never sent
    duplicate: float = 0.0  # share sent twice
    reorder: bool = False  # send each batch in a random order
    delay_ms: float = 0.0  # before each delivery


@dataclass
class CallbackSender:
    url: str
    token: str
    aes_key: str
    corp_id: str
    faults: CallbackFaults = field(default_factory=CallbackFaults)
    timeout: float = 5.0
    attempts: int = 4  # the first try and 3 retries
    stats: dict[str, int] = field(default_factory=lambda: {"events": 0, "delivered": 0, "retries": 0, "failed": 0,
                                                           "dropped": 0, "duplicated": 0})  # fmt: skip
    # sha256 of each event's plaintext, by outcome: what the receiver acknowledged, what WeCom gave up on.
    acknowledged: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)
    _seed: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self._session = requests.Session()
        threading.Thread(target=self._run, name="wecom-sim-callbacks", daemon=True).start()

    def emit(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        self.emit_messages([contact_event(self.corp_id, change, **ids) for change, ids in batch])

    def emit_messages(self, messages: list[bytes]) -> None:
        """Post these plaintext messages, sealed, with the configured faults."""
        out = []
        for message in messages:
            self.stats["events"] += 1
            if self._seed.random() < self.faults.drop:
                self.stats["dropped"] += 1
                continue
            out.append(message)
            if self._seed.random() < self.faults.duplicate:
                self.stats["duplicated"] += 1
                out.append(message)
        if self.faults.reorder:
            self._seed.shuffle(out)
        for message in out:
            self._queue.put(message)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            try:
                if self.faults.delay_ms:
                    time.sleep(self.faults.delay_ms / 1000)
                self._deliver(message)
            finally:
                self._queue.task_done()

    def _deliver(self, message: bytes) -> None:
        for attempt in range(self.attempts):
            timestamp, nonce = str(int(time.time())), str(self._seed.randrange(10**9))
            signature, encrypted = seal(message, self.token, self.aes_key, self.corp_id, timestamp, nonce)
            body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]>"
                    "</Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>")  # fmt: skip
            params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
            try:
                answer = self._session.post(self.url, params=params, data=body.encode(), timeout=self.timeout)
                if answer.status_code == 200:
                    self.stats["delivered"] += 1
                    self.acknowledged.append(hashlib.sha256(message).hexdigest())
                    return
            except requests.RequestException:
                pass
            if attempt + 1 < self.attempts:
                self.stats["retries"] += 1
                time.sleep(min(2.0, 0.2 * 2**attempt))
        self.stats["failed"] += 1
        self.given_up.append(hashlib.sha256(message).hexdigest())
