"""The ledger keys of the interview messages: each names the business identity, so any re-run (retry,
re-trigger, backfill) sends nothing twice.

``digest:<day>:<userid>``, ``leader-digest:<day>:<department>:<leader>``,
``reminder:<interview>:<scheduled start>:<userid>`` (a reschedule is a new reminder),
``feedback:<interview>:<userid>:<local day>`` (at most one nudge a day),
``escalation:<interview>:<scheduled start>:<userid>`` (to each leader, once per reminder), and
``decline:<interview>:<scheduled start>:<userid>`` (``wecom.interviews.answers``).

Days are Asia/Shanghai days. The scheduled start is an instant in one fixed form, UTC to the second
(``2026-12-01T02:00:00Z``, see ``ledger_instant``), never as the database session returned it: with the
offset of the session's ``TimeZone`` in the key, a replica, a failover or ``PGTZ`` on one worker sent every
reminder again and dropped every escalation. Migration 015 rewrote the keys written the old way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from wecom.errors import WeComDataError
from wecom.interviews.render import Interview


def ledger_instant(moment: datetime) -> str:
    """An instant as ledger keys name it: UTC to the second, ``2026-12-01T02:00:00Z``, whatever zone the
    database session returned it in (``include/sql/migrations/015_utc_ledger_keys.sql`` writes the same)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise WeComDataError(f"{moment!r} has no time zone: the contract's times are timestamptz")
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def reminder_suffix(interview_id: int, starts_at: datetime, userid: str) -> str:
    """``<interview>:<scheduled start>:<userid>``: what a reminder's key and those of its escalation and
    decline name."""
    return f"{interview_id}:{ledger_instant(starts_at)}:{userid}"


def reminder_key(interview: Interview, userid: str) -> str:
    return "reminder:" + reminder_suffix(interview.interview_id, interview.starts_at, userid)


def escalation_key(reminder: str) -> str:
    return "escalation:" + reminder.removeprefix("reminder:")


def decline_key(interview_id: int, starts_at: datetime, userid: str) -> str:
    return "decline:" + reminder_suffix(interview_id, starts_at, userid)


def digest_key(day: date, userid: str) -> str:
    return f"digest:{day.isoformat()}:{userid}"


def leader_digest_key(day: date, department_id: int, leader: str) -> str:
    return f"leader-digest:{day.isoformat()}:{department_id}:{leader}"


def feedback_key(interview: Interview, userid: str, day: date) -> str:
    return f"feedback:{interview.interview_id}:{userid}:{day.isoformat()}"
