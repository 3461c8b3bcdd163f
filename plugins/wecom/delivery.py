"""Every message through the ledger, so none is sent twice and none is lost.

For each batch: claim the (dedup key, recipient) rows (a unique constraint; a lease lets the same task's
retry take its own claims back), reserve send slots under WeCom's per-member limits (counted across
processes through the ledger), send through a ``Transport``, and record every outcome. A message the
limits would delay too long is ``deferred`` with its content, and any later sender picks it up. A crash
between send and record is covered by WeCom's duplicate check: the retry sends the same bytes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from wecom import ledger
from wecom.errors import (
    CARDS_NEED_CALLBACK,
    USER_NOT_FOUND,
    SettingsError,
    WeComCallerError,
    WeComConfigError,
    WeComError,
    WeComItemError,
)
from wecom.hooks import SendResult, WeComHook
from wecom.limits import MemberLimits
from wecom.outbox import Claimant, Outcome, Outgoing, sends
from wecom.payloads import DuplicateCheck, request_body
from wecom.warehouse import require_autocommit
from wecom.webhook import WeComWebhookHook

__all__ = [
    "AppMessages",
    "MemberLimits",
    "RobotMessages",
    "Sender",
    "Summary",
    "Transport",
]


class Transport(Protocol):
    """How one claimed message reaches WeCom."""

    def deliver(self, message: Outgoing) -> SendResult: ...


@dataclass(frozen=True)
class AppMessages:
    """Application messages (message/send) with WeCom's duplicate check on.

    A message with a ``fallback`` (an answerable card) goes out as the fallback when WeCom refuses cards
    for the app's configuration (43012: no callback URL); after one refusal, the rest of the run sends
    fallbacks straight away."""

    hook: WeComHook
    duplicate_check: DuplicateCheck = DuplicateCheck()
    cards_refused: list[str] = field(default_factory=list, compare=False)

    def deliver(self, message: Outgoing) -> SendResult:
        to = message.to or {"touser": message.recipient}
        if message.fallback is None or not self.cards_refused:
            try:
                return self.hook.send_message(request_body(to, message.payload, self.duplicate_check))
            except WeComConfigError as exc:
                if message.fallback is None or exc.errcode != CARDS_NEED_CALLBACK:
                    raise
                self.cards_refused.append(str(exc))
        result = self.hook.send_message(request_body(to, message.fallback, self.duplicate_check))
        return replace(result, fallback=f"sent as markdown: {self.cards_refused[0]}")


@dataclass(frozen=True)
class RobotMessages:
    """Group robot messages (webhook/send): the group is the recipient, nobody can be invalid."""

    hook: WeComWebhookHook

    def deliver(self, message: Outgoing) -> SendResult:
        self.hook.send(message.payload)
        return SendResult()


@dataclass
class Summary:
    sent: int = 0
    already_done: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    expired: int = 0
    fallbacks: int = 0  # answerable cards sent as their markdown fallback
    limit_wait_seconds: float = 0.0  # slept for WeCom's per-member windows (not our work, not the API's)
    msgids: list[str] = field(default_factory=list)
    invalid_users: list[str] = field(default_factory=list)
    unlicensed_users: list[str] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        for counter in fields(self):  # counts and seconds add up, lists concatenate
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Sender:
    """Sends ``Outgoing`` messages once each through one transport, recording everything in the ledger.

    The connection must be in autocommit mode: each step opens its own short transaction.
    """

    def __init__(
        self,
        transport: Transport,
        conn: Any,
        claimant: Claimant = Claimant(),
        limits: MemberLimits = MemberLimits(),
        batch_size: int = 200,
        lease_seconds: int = 600,
    ) -> None:
        require_autocommit(conn, "Sender")
        self.transport = transport
        self.conn = conn
        self.claimant = claimant
        self.limits = limits
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds

    def send(self, messages: list[Outgoing]) -> Summary:
        unique = list({(m.dedup_key, m.recipient): m for m in messages}.values())
        summary = Summary()
        for batch in _batches(sends(unique), self.batch_size):
            summary.add(self._send_batch(batch))
        return summary

    def resume_deferred(self, limit: int = 1000) -> Summary:
        """Send deferred messages whose time has come (any DAG's), and resumed ones an error left pending,
        or expire them."""
        pending = ledger.due_deferred(self.conn, limit)
        return self.send(pending) if pending else Summary()

    def _send_batch(self, batch: list[Outgoing]) -> Summary:
        summary = Summary()
        claimed = ledger.claim(self.conn, batch, self.claimant, self.lease_seconds)
        summary.already_done = len(batch) - len(claimed)
        if not claimed:
            return summary
        now = ledger.database_now(self.conn)
        expired = [m for m in claimed if m.expires_at and m.expires_at.timestamp() <= now]
        outcomes = [Outcome(m, "expired", reason="too late: its moment has passed") for m in expired]
        summary.expired = len(expired)
        plan = ledger.reserve(self.conn, [m for m in claimed if m not in expired], self.limits)
        summary.deferred = len(plan.deferred)
        try:
            self._send_planned(plan, summary, outcomes)
        finally:
            ledger.record(self.conn, outcomes)
        return summary

    def _send_planned(self, plan: ledger.Reservation, summary: Summary, outcomes: list[Outcome]) -> None:
        """Send in slot order, each no earlier than planned and never closer to the last actual send to
        its member than the windows allow; a transient error stops the batch with the message pending."""
        done_at: dict[str, list[float]] = defaultdict(list)  # actual completions, this machine's clock
        for slot, group in plan.schedule:
            for message in group:  # the plan, pushed later if earlier sends finished late
                if message.personal:
                    slot = self.limits.next_slot(done_at[message.recipient], slot)
            delay = slot - time.time()
            if delay > 0:
                time.sleep(delay)
                summary.limit_wait_seconds += delay
            try:
                settled = self._deliver(group, summary)
            except WeComError as exc:
                # Configuration: failed for good. Anything else survived the hook's retries: keep it pending
                # (the task's retry takes it back).
                status = "failed" if isinstance(exc, (WeComConfigError, SettingsError)) else "pending"
                outcomes += [Outcome(m, status, errcode=exc.errcode, reason=str(exc)) for m in group]
                raise
            finished = time.time()
            for message in group:
                if message.personal:
                    done_at[message.recipient].append(finished)
            outcomes += [_finished(outcome, finished - plan.clock_offset) for outcome in settled]

    def _deliver(self, group: list[Outgoing], summary: Summary) -> list[Outcome]:
        """One send for the group (``outbox.sends``, members in order); an outcome per member."""
        message = group[0]
        if len(group) > 1:
            message = replace(message, to={"touser": "|".join(m.recipient for m in group)})
        try:
            result = self.transport.deliver(message)
        except WeComItemError as exc:
            summary.skipped += len(group)
            return [Outcome(m, "skipped", errcode=exc.errcode, reason=str(exc)) for m in group]
        except WeComCallerError as exc:  # this message is malformed; the others may be fine
            summary.failed += len(group)
            return [Outcome(m, "failed", errcode=exc.errcode, reason=str(exc)) for m in group]
        summary.invalid_users += result.invalid_users
        summary.unlicensed_users += result.unlicensed_users
        settled = [self._settle(m, result, summary) for m in group]
        if result.msgid and any(o.status == "sent" for o in settled):
            summary.msgids.append(result.msgid)
        return settled

    @staticmethod
    def _settle(message: Outgoing, result: SendResult, summary: Summary) -> Outcome:
        refused = {u.lower() for u in result.invalid_users + result.unlicensed_users}
        if result.all_invalid or (message.personal and message.recipient.lower() in refused):
            summary.skipped += 1
            unlicensed = {u.lower() for u in result.unlicensed_users}
            why = (
                "unlicensed"
                if message.recipient.lower() in unlicensed or (result.all_invalid and result.unlicensed_users)
                else "not a valid recipient (left, or outside the app's visibility)"
            )
            return Outcome(message, "skipped", result.msgid, result.errcode or USER_NOT_FOUND, why)
        summary.sent += 1
        if result.fallback:
            summary.fallbacks += 1
            return Outcome(message, "sent", result.msgid, CARDS_NEED_CALLBACK, result.fallback)
        return Outcome(message, "sent", result.msgid, response_code=result.response_code)


def _batches(groups: list[list[Outgoing]], size: int) -> Iterator[list[Outgoing]]:
    """Whole sends packed into batches of about ``size`` messages: a send is never cut in two, so where a
    batch ends cannot change what a retry sends."""
    batch: list[Outgoing] = []
    for group in groups:
        if batch and len(batch) + len(group) > size:
            yield batch
            batch = []
        batch += group
    if batch:
        yield batch


def _finished(outcome: Outcome, at: float) -> Outcome:
    return replace(outcome, finished=at)
