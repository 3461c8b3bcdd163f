"""What is to be sent and what became of it: the value types every sender, the ledger and the pipelines
share. ``Outgoing`` is one message to send once, ``Outcome`` what became of it, ``Claimant`` who sends."""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wecom.payloads import reader_text

MAX_TOUSER = 1000  # message/send's limit on members per call


@dataclass
class Outgoing:
    """One message to send once. ``to`` defaults to the recipient userid (a personal message).
    ``fallback``: what to send instead when WeCom refuses an answerable card for the app's configuration."""

    dedup_key: str
    recipient: str
    payload: dict[str, Any]
    to: dict[str, str] | None = None
    expires_at: datetime | None = None
    fallback: dict[str, Any] | None = None

    @property
    def personal(self) -> bool:
        return self.to is None

    def body_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.payload, ensure_ascii=False, sort_keys=True).encode()
        ).hexdigest()

    def text(self) -> str:
        """The message as its reader sees it (``wecom.payloads.reader_text``)."""
        return reader_text(self.payload)

    def preview(self) -> str:
        """A line for the ledger's preview column (the body itself is kept only as a hash)."""
        return " ".join(self.text().split())[:80]


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed message; ``finished`` is the send's completion in database time."""

    message: Outgoing
    status: str  # sent | skipped | failed | expired | pending
    msgid: str | None = None
    errcode: int | None = None
    reason: str | None = None
    finished: float | None = None
    response_code: str | None = field(default=None, repr=False)  # an answerable card's first update


@dataclass(frozen=True)
class Claimant:
    """Who sends: the Airflow task attempt (a retry of the same task may take its own claims back)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int = -1

    @classmethod
    def from_context(cls, context: Any | None) -> Claimant:
        if not context:
            return cls(task_id=f"local-{os.getpid()}")
        ti = context["ti"]
        return cls(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))

    @property
    def key(self) -> str:
        return f"{self.dag_id}/{self.task_id}/{self.run_id}/{self.map_index}"


def sends(messages: list[Outgoing]) -> list[list[Outgoing]]:
    """Which messages go out as one message/send: the same notice to several members (one key, the same
    bytes) goes to all of them at once, members sorted, so a retry composes the very bytes WeCom's duplicate
    check absorbs. Answerable cards and messages with a fallback never share a send: each card's update code
    belongs to its one reader."""
    groups: dict[tuple[str, str] | int, list[Outgoing]] = defaultdict(list)
    for index, message in enumerate(messages):
        shareable = (
            message.personal
            and message.fallback is None
            and message.payload.get("msgtype") != "template_card"
        )
        groups[(message.dedup_key, message.body_hash()) if shareable else index].append(message)
    together = []
    for members in groups.values():
        members.sort(key=lambda m: m.recipient)
        together += [members[i : i + MAX_TOUSER] for i in range(0, len(members), MAX_TOUSER)]
    return together
