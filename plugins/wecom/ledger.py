"""The delivery ledger ``wecom.message_log``: claims, slot reservations, deferrals and outcomes.

Every function takes a connection in autocommit mode (``warehouse.connect`` opens them so) and runs its
own explicit transaction; none changes the connection's mode.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from wecom import sql
from wecom.limits import MemberLimits
from wecom.outbox import Claimant, Outcome, Outgoing, sends
from wecom.warehouse import require_autocommit

LEDGER = "delivery/ledger.sql"


@dataclass
class Reservation:
    """The plan for a batch: (slot in this machine's clock, one send's messages) in order, and what was
    deferred."""

    schedule: list[tuple[float, list[Outgoing]]]
    deferred: list[Outgoing]
    clock_offset: float  # this machine's clock minus the database's


def _statement(name: str) -> str:
    return sql.statement(LEDGER, name)


def claim(conn: Any, batch: list[Outgoing], claimant: Claimant, lease_seconds: int) -> list[Outgoing]:
    """The messages of ``batch`` this claimant may send now (new, deferred, its own or stale claims)."""
    require_autocommit(conn, "claim")
    columns: dict[str, list[Any]] = {name: [] for name in ("k", "r", "t", "h", "p", "e")}
    for m in batch:
        for name, value in zip(
            columns,
            (m.dedup_key, m.recipient, m.payload.get("msgtype"), m.body_hash(), m.preview(), m.expires_at),
            strict=True,
        ):
            columns[name].append(value)
    params = {
        **columns,
        "dag": claimant.dag_id,
        "run": claimant.run_id,
        "task": claimant.task_id,
        "by": claimant.key,
        "lease": lease_seconds,
    }
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_statement("claim"), params)
        mine = set(cur.fetchall())
    return [m for m in batch if (m.dedup_key, m.recipient) in mine]


def database_now(conn: Any) -> float:
    return conn.execute(_statement("now")).fetchone()[0]


def reserve(conn: Any, messages: list[Outgoing], limits: MemberLimits) -> Reservation:
    """Reserve a slot per send (``outbox.sends``) under the per-member windows of all its members, or defer
    the whole send: a send is never split, so a retry composes the same one.

    Slots are planned in database time (every sender shares that clock) under per-member locks, then
    converted once to this machine's clock for sleeping.
    """
    require_autocommit(conn, "reserve")
    personal = sorted({m.recipient for m in messages if m.personal})
    with conn.transaction():
        if personal:
            conn.execute(_statement("lock_members"), {"keys": [f"wecom.member:{r}" for r in personal]})
        before = time.time()
        now = database_now(conn)
        offset = (before + time.time()) / 2 - now  # this machine's clock minus the database's
        taken = _taken_slots(conn, personal, now - limits.hour)
        schedule, deferred = _plan(messages, taken, now, limits)
        reserved = [
            {"slot": slot, "key": m.dedup_key, "recipient": m.recipient}
            for slot, send in schedule
            for m in send
            if m.personal
        ]
        if reserved:
            conn.cursor().executemany(_statement("reserve"), reserved)
        if deferred:
            conn.cursor().executemany(_statement("defer"), [_deferral(m, slot) for m, slot in deferred])
    schedule.sort(key=lambda item: item[0])
    return Reservation([(slot + offset, send) for slot, send in schedule], [m for m, _ in deferred], offset)


def _taken_slots(conn: Any, recipients: list[str], since: float) -> dict[str, list[float]]:
    taken: dict[str, list[float]] = defaultdict(list)
    if recipients:
        for recipient, at in conn.execute(
            _statement("taken_slots"), {"recipients": recipients, "since": since}
        ):
            taken[recipient].append(at)
    return taken


def _plan(
    messages: list[Outgoing], taken: dict[str, list[float]], now: float, limits: MemberLimits
) -> tuple[list[tuple[float, list[Outgoing]]], list[tuple[Outgoing, float]]]:
    """Each send's slot (now for group chats), or a deferral of all its messages when the wait would be
    too long: one member's full window holds back the whole send, the price of a retry's identical bytes."""
    schedule: list[tuple[float, list[Outgoing]]] = []
    deferred: list[tuple[Outgoing, float]] = []
    for send in sends(messages):
        if not send[0].personal:
            schedule.append((now, send))
            continue
        slot = _common_slot(send, taken, now, limits)
        if slot - now > limits.max_wait:
            deferred += [(message, slot) for message in send]
            continue
        for message in send:
            bisect.insort(taken[message.recipient], slot)
        schedule.append((slot, send))
    return schedule, deferred


def _common_slot(
    send: list[Outgoing], taken: dict[str, list[float]], now: float, limits: MemberLimits
) -> float:
    """The earliest slot at which every member of the send has room."""
    slot = now
    while (later := max(limits.next_slot(taken[m.recipient], slot) for m in send)) > slot:
        slot = later
    return slot


def _deferral(message: Outgoing, slot: float) -> dict[str, Any]:
    return {
        "slot": slot,
        "body": Jsonb({"payload": message.payload, "to": message.to, "fallback": message.fallback}),
        "reason": "per-member limit: deferred to a later run",
        "key": message.dedup_key,
        "recipient": message.recipient,
    }


def record(conn: Any, outcomes: list[Outcome]) -> None:
    """Settle the outcomes of one batch in one transaction."""
    if not outcomes:
        return
    rows = [
        {
            "status": o.status,
            "msgid": o.msgid,
            "errcode": o.errcode,
            "reason": o.reason[:1000] if o.reason else None,
            "finished": o.finished,
            "key": o.message.dedup_key,
            "recipient": o.message.recipient,
            "code": o.response_code,
        }
        for o in outcomes
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_statement("record"), rows)


def due_deferred(conn: Any, limit: int) -> list[Outgoing]:
    """Deferred messages whose time has come (any DAG's), with the content they were deferred with."""
    rows = conn.execute(_statement("due_deferred"), {"limit": limit}).fetchall()
    return [
        Outgoing(key, recipient, body["payload"], body.get("to"), expires, body.get("fallback"))
        for key, recipient, body, expires in rows
    ]


def settled(conn: Any, keys: list[str]) -> set[str]:
    """The keys the ledger has settled for good (sent, skipped, expired): no need to even render them."""
    return {key for (key,) in conn.execute(_statement("settled"), {"keys": keys})}


def record_dry_run(conn: Any, messages: list[Outgoing], claimant: Claimant) -> int:
    """Record what a dry run would send (status skipped, reason 'dry run'); keys carry the run id."""
    rows = [
        {
            "key": f"dry-run:{claimant.run_id}:{m.dedup_key}",
            "recipient": m.recipient,
            "msgtype": m.payload.get("msgtype"),
            "hash": m.body_hash(),
            "preview": m.preview(),
            "dag": claimant.dag_id,
            "run": claimant.run_id,
            "task": claimant.task_id,
        }
        for m in messages
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_statement("dry_run"), rows)
    return len(rows)
