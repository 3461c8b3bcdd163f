"""``send_once``: every message through the ledger, so none is sent twice and none is lost.

For each batch: claim the (dedup key, recipient) rows (a unique constraint; a lease lets the same task's
retry take its own claims back), reserve send slots under WeCom's per-member limits (30 a minute, 1,000
an hour, counted across processes through the ledger, under a per-member advisory lock), send, and
record every outcome. A message the limits would delay too long is ``deferred`` with its content, and
any later sender picks it up. A crash between send and record is covered by WeCom's duplicate check:
the retry sends the same bytes.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from wecom.errors import WeComConfigError, WeComError, WeComItemError
from wecom.hooks import SendResult, WeComHook
from wecom.messages import DuplicateCheck, request_body

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemberLimits:
    """WeCom's per-app, per-member windows; ``time_scale`` shrinks them for tests and benchmarks."""

    per_minute: int = 30
    per_hour: int = 1000
    time_scale: float = 1.0
    margin: float = 0.03  # keep clear of the window edges: arrival times differ from reservation times
    margin_seconds: float = 0.05  # and of clock-offset error between this machine and the database
    max_wait: float = 90.0  # longer than this (scaled seconds) and the message is deferred instead

    @property
    def minute(self) -> float:
        return 60.0 / self.time_scale * (1 + self.margin) + self.margin_seconds

    @property
    def hour(self) -> float:
        return 3600.0 / self.time_scale * (1 + self.margin) + self.margin_seconds

    def next_slot(self, taken: list[float], now: float) -> float:
        """The earliest time >= now at which one more message keeps every window under its limit.

        ``taken`` (sorted) holds every reserved slot, future ones included (other senders' too), so a
        window around the new slot counts messages on both sides of it.
        """
        slot = now
        while True:
            lo_m, hi_m = (
                bisect.bisect_right(taken, slot - self.minute),
                bisect.bisect_left(taken, slot + self.minute),
            )
            lo_h, hi_h = (
                bisect.bisect_right(taken, slot - self.hour),
                bisect.bisect_left(taken, slot + self.hour),
            )
            over = []
            if hi_m - lo_m >= self.per_minute:
                over.append(taken[lo_m] + self.minute)
            if hi_h - lo_h >= self.per_hour:
                over.append(taken[lo_h] + self.hour)
            if not over:
                return slot
            slot = max(slot, min(over)) + 1e-3  # step past the earliest message of a full window


@dataclass
class Outgoing:
    """One message to send once. ``to`` defaults to the recipient userid (a personal message)."""

    dedup_key: str
    recipient: str
    payload: dict[str, Any]
    to: dict[str, str] | None = None
    expires_at: datetime | None = None

    @property
    def personal(self) -> bool:
        return self.to is None

    def body_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.payload, ensure_ascii=False, sort_keys=True).encode()
        ).hexdigest()

    def preview(self) -> str:
        section = self.payload.get(self.payload.get("msgtype", ""), {})
        text = section.get("content") or section.get("title") or json.dumps(section, ensure_ascii=False)
        if self.payload.get("msgtype") == "template_card":
            text = section.get("main_title", {}).get("title", "")
        return " ".join(str(text).split())[:80]


@dataclass
class Summary:
    sent: int = 0
    already_done: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    expired: int = 0
    limit_wait_seconds: float = 0.0  # slept for WeCom's per-member windows (not our work, not the API's)
    msgids: list[str] = field(default_factory=list)
    invalid_users: list[str] = field(default_factory=list)
    unlicensed_users: list[str] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        for counter in fields(self):  # counts and seconds add up, lists concatenate
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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


def settled(conn: Any, keys: list[str]) -> set[str]:
    """The keys the ledger has settled for good (sent, skipped, expired): no need to even render them."""
    rows = conn.execute(
        "SELECT dedup_key FROM wecom.message_log WHERE dedup_key = ANY(%s)"
        " AND status IN ('sent', 'skipped', 'expired')",
        (keys,),
    )
    return {key for (key,) in rows}


class Sender:
    """Sends ``Outgoing`` messages once each through one app, recording everything in the ledger."""

    def __init__(
        self,
        hook: WeComHook | None,
        conn: Any,
        claimant: Claimant = Claimant(),
        limits: MemberLimits = MemberLimits(),
        duplicate_check: DuplicateCheck = DuplicateCheck(),
        batch_size: int = 200,
        lease_seconds: int = 600,
        transport: Callable[[Outgoing], SendResult] | None = None,
    ) -> None:
        self.hook = hook
        self.transport = transport or self._app_message
        self._clock_offset = 0.0
        self.conn = conn
        self.conn.autocommit = True
        self.claimant = claimant
        self.limits = limits
        self.duplicate_check = duplicate_check
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds

    def send(self, messages: list[Outgoing]) -> Summary:
        unique = list({(m.dedup_key, m.recipient): m for m in messages}.values())
        summary = Summary()
        for start in range(0, len(unique), self.batch_size):
            summary.add(self._send_batch(unique[start : start + self.batch_size]))
        return summary

    def resume_deferred(self, limit: int = 1000) -> Summary:
        """Send deferred messages whose time has come (any DAG's), or expire them."""
        rows = self.conn.execute(
            "SELECT dedup_key, recipient, deferred_payload, expires_at FROM wecom.message_log"
            " WHERE status = 'deferred' AND not_before <= clock_timestamp() ORDER BY not_before LIMIT %s",
            (limit,),
        ).fetchall()
        pending = [Outgoing(key, recipient, body["payload"], body.get("to"), expires)
                   for key, recipient, body, expires in rows]  # fmt: skip
        return self.send(pending) if pending else Summary()

    # -- one batch ------------------------------------------------------------------------------

    def _send_batch(self, batch: list[Outgoing]) -> Summary:
        summary = Summary()
        claimed = self._claim(batch)
        summary.already_done = len(batch) - len(claimed)
        if not claimed:
            return summary
        now_db = self.conn.execute("SELECT clock_timestamp()").fetchone()[0]
        live, expired = [], []
        for message in claimed:
            (expired if message.expires_at and message.expires_at <= now_db else live).append(message)
        outcomes: list[tuple] = [
            self._outcome(m, "expired", reason="too late: its moment has passed") for m in expired
        ]
        summary.expired = len(expired)
        schedule, deferred = self._reserve(live)
        summary.deferred = len(deferred)
        done_at: dict[str, list[float]] = defaultdict(list)  # actual completions, this machine's clock
        try:
            for slot, message in schedule:
                if message.personal:  # the plan, pushed later if earlier sends finished late
                    slot = self.limits.next_slot(done_at[message.recipient], slot)
                delay = slot - time.time()
                if delay > 0:
                    time.sleep(delay)
                    summary.limit_wait_seconds += delay
                outcome = self._deliver(message, summary)
                finished = time.time()
                if message.personal:
                    done_at[message.recipient].append(finished)
                outcomes.append((*outcome[:-1], finished - self._clock_offset))
        except WeComConfigError as exc:
            outcomes.append(self._outcome(message, "failed", errcode=exc.errcode, reason=str(exc)))
            self._record(outcomes)
            raise
        except WeComError as exc:
            # Transient after the hook's retries: keep it pending (the task retry takes it back) and stop.
            outcomes.append(self._outcome(message, "pending", errcode=exc.errcode, reason=str(exc)))
            self._record(outcomes)
            raise
        self._record(outcomes)
        return summary

    def _claim(self, batch: list[Outgoing]) -> list[Outgoing]:
        c = self.claimant
        rows = [
            (m.dedup_key, m.recipient, m.payload.get("msgtype"), m.body_hash(), m.preview(), m.expires_at)
            for m in batch
        ]
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                """
                INSERT INTO wecom.message_log AS l (dedup_key, recipient, msgtype, body_hash, preview, expires_at,
                                                   dag_id, run_id, task_id, claimed_by, claimed_at, attempts)
                SELECT k, r, t, h, p, e, %(dag)s, %(run)s, %(task)s, %(by)s, clock_timestamp(), 1
                FROM unnest(%(k)s::text[], %(r)s::text[], %(t)s::text[], %(h)s::text[], %(p)s::text[],
                            %(e)s::timestamptz[]) AS v(k, r, t, h, p, e)
                ON CONFLICT (dedup_key, recipient) DO UPDATE
                SET status = 'pending', claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at,
                    attempts = l.attempts + 1, run_id = excluded.run_id, task_id = excluded.task_id,
                    body_hash = excluded.body_hash, preview = excluded.preview, updated_at = clock_timestamp()
                WHERE l.status IN ('pending', 'deferred')
                  AND (l.status = 'deferred' OR l.claimed_by = excluded.claimed_by
                       OR l.claimed_at < clock_timestamp() - make_interval(secs => %(lease)s))
                RETURNING dedup_key, recipient
                """,
                {
                    "k": [r[0] for r in rows], "r": [r[1] for r in rows], "t": [r[2] for r in rows],
                    "h": [r[3] for r in rows], "p": [r[4] for r in rows], "e": [r[5] for r in rows],
                    "dag": c.dag_id, "run": c.run_id, "task": c.task_id, "by": c.key, "lease": self.lease_seconds,
                },
            )  # fmt: skip
            mine = set(cur.fetchall())
        return [m for m in batch if (m.dedup_key, m.recipient) in mine]

    def _reserve(self, messages: list[Outgoing]) -> tuple[list[tuple[float, Outgoing]], list[Outgoing]]:
        """Reserve a send slot per personal message under the per-member windows, or defer it."""
        personal = sorted({m.recipient for m in messages if m.personal})
        schedule: list[tuple[float, Outgoing]] = []
        deferred: list[tuple[Outgoing, float]] = []
        with self.conn.transaction():
            if personal:  # in sorted order, in one round trip: no deadlocks between concurrent senders
                self.conn.execute(
                    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))"
                    " FROM (SELECT k FROM unnest(%s::text[]) AS k ORDER BY k OFFSET 0) AS ordered",
                    ([f"wecom.member:{r}" for r in personal],),
                )
            before = time.time()
            now = self.conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
            self._clock_offset = (before + time.time()) / 2 - now  # this machine's clock minus the database's
            taken: dict[str, list[float]] = defaultdict(list)
            if personal:
                for recipient, at in self.conn.execute(
                    "SELECT recipient, extract(epoch FROM reserved_at)::float8 FROM wecom.message_log"
                    " WHERE recipient = ANY(%s) AND reserved_at > to_timestamp(%s)"
                    " AND status IN ('pending', 'sent') ORDER BY reserved_at",
                    (personal, now - self.limits.hour),
                ):
                    taken[recipient].append(at)
            reservations = []
            for message in messages:
                if not message.personal:
                    schedule.append((now, message))
                    continue
                slot = self.limits.next_slot(taken[message.recipient], now)
                if slot - now > self.limits.max_wait:
                    deferred.append((message, slot))
                    continue
                bisect.insort(taken[message.recipient], slot)
                schedule.append((slot, message))
                reservations.append((message.dedup_key, message.recipient, slot))
            if reservations:
                self.conn.cursor().executemany(
                    "UPDATE wecom.message_log SET reserved_at = to_timestamp(%s) WHERE dedup_key = %s AND recipient = %s",
                    [(slot, key, recipient) for key, recipient, slot in reservations],
                )
            if deferred:
                self.conn.cursor().executemany(
                    "UPDATE wecom.message_log SET status = 'deferred', not_before = to_timestamp(%s),"
                    " deferred_payload = %s, reason = %s, updated_at = clock_timestamp()"
                    " WHERE dedup_key = %s AND recipient = %s",
                    [(slot, Jsonb({"payload": m.payload, "to": m.to}), "per-member limit: deferred to a later run",
                      m.dedup_key, m.recipient) for m, slot in deferred],
                )  # fmt: skip
        # Local slots are in DB time; convert to this machine's clock once.
        schedule.sort(key=lambda item: item[0])
        return [(slot + self._clock_offset, m) for slot, m in schedule], [m for m, _ in deferred]

    def _app_message(self, message: Outgoing) -> SendResult:
        to = message.to or {"touser": message.recipient}
        return self.hook.send_message(request_body(to, message.payload, self.duplicate_check))

    def _deliver(self, message: Outgoing, summary: Summary) -> tuple:
        try:
            result = self.transport(message)
        except WeComItemError as exc:
            summary.skipped += 1
            return self._outcome(message, "skipped", errcode=exc.errcode, reason=str(exc))
        except WeComConfigError:
            raise
        except WeComError as exc:
            if exc.errcode in (
                45002,
                40058,
                44004,
                82001,
                82002,
            ):  # this message is malformed; others may be fine
                summary.failed += 1
                return self._outcome(message, "failed", errcode=exc.errcode, reason=str(exc))
            raise
        summary.invalid_users += result.invalid_users
        summary.unlicensed_users += result.unlicensed_users
        if result.all_invalid or (message.personal and message.recipient.lower() in
                                  {u.lower() for u in result.invalid_users + result.unlicensed_users}):  # fmt: skip
            summary.skipped += 1
            why = (
                "unlicensed"
                if result.unlicensed_users
                else "not a valid recipient (left, or outside the app's visibility)"
            )
            return self._outcome(
                message, "skipped", errcode=result.errcode or 60111, reason=why, msgid=result.msgid
            )
        summary.sent += 1
        if result.msgid:
            summary.msgids.append(result.msgid)
        return self._outcome(message, "sent", msgid=result.msgid)

    @staticmethod
    def _outcome(message: Outgoing, status: str, errcode: int | None = None, reason: str | None = None,
                 msgid: str | None = None) -> tuple:  # fmt: skip
        return (
            status,
            msgid,
            errcode,
            reason[:1000] if reason else None,
            message.dedup_key,
            message.recipient,
            None,
        )

    def _record(self, outcomes: list[tuple]) -> None:
        if not outcomes:
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                """
                UPDATE wecom.message_log
                SET status = %s, msgid = coalesce(%s, msgid), errcode = %s, reason = %s,
                    sent_at = CASE WHEN %s = 'sent' THEN clock_timestamp() END,
                    reserved_at = coalesce(to_timestamp(%s::float8), reserved_at),
                    deferred_payload = NULL, updated_at = clock_timestamp()
                WHERE dedup_key = %s AND recipient = %s
                """,
                [
                    (s, msgid, errcode, reason, s, done, key, recipient)
                    for s, msgid, errcode, reason, key, recipient, done in outcomes
                ],
            )


def send_once(hook: WeComHook, conn: Any, messages: list[Outgoing], **options: Any) -> Summary:
    """Send each message at most once (by its dedup key and recipient), recording every outcome."""
    return Sender(hook, conn, **options).send(messages)


def record_dry_run(conn: Any, messages: list[Outgoing], claimant: Claimant) -> int:
    """Record what a dry run would send (status skipped, reason 'dry run'); keys carry the run id."""
    rows = [
        (f"dry-run:{claimant.run_id}:{m.dedup_key}", m.recipient, m.payload.get("msgtype"), m.body_hash(),
         m.preview(), claimant.dag_id, claimant.run_id, claimant.task_id)
        for m in messages
    ]  # fmt: skip
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO wecom.message_log (dedup_key, recipient, status, reason, msgtype, body_hash, preview,"
            " dag_id, run_id, task_id) VALUES (%s, %s, 'skipped', 'dry run: rendered, not sent', %s, %s, %s,"
            " %s, %s, %s) ON CONFLICT (dedup_key, recipient) DO NOTHING",
            rows,
        )
    return len(rows)
