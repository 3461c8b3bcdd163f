"""Turn interviews into personal messages: the daily digest, leader summaries, reminders, feedback nudges.

Dedup keys name the business identity, so any re-run (retry, re-trigger, backfill) sends nothing twice:
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

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from wecom import sql
from wecom.errors import WeComDataError
from wecom.interviews.cards import ReminderCard, reminder_card
from wecom.interviews.mapping import MAPPING, QUERIES, lookup, report_unmapped
from wecom.interviews.render import LOCAL_TZ, Interview, local, render
from wecom.ledger import Outgoing, settled
from wecom.messages import markdown, split_markdown, task_id_for

log = logging.getLogger(__name__)
ANSWERS = "interview/answers.sql"
STYLES = ("card", "markdown")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=LOCAL_TZ)
    return start, start + timedelta(days=1)


def _interviews(source: Any, query: str, **params: Any) -> list[tuple[Interview, int]]:
    rows = source.execute(sql.statements(QUERIES)[query], params).fetchall()
    return [(Interview(*row[:7]), row[7]) for row in rows]


def personal(key: str, userid: str, content: str, expires_at: datetime | None) -> list[Outgoing]:
    parts = split_markdown(content)
    return [
        Outgoing(key if len(parts) == 1 else f"{key}#part{n}", userid, markdown(part), expires_at=expires_at)
        for n, part in enumerate(parts, 1)
    ]


def digest_messages(
    source: Any,
    warehouse: Any,
    day: date,
    language: str = "zh",
    only_users: set[str] | None = None,
    leader_summary: bool = True,
    owed_days: int = 14,
) -> tuple[list[Outgoing], dict[str, Any]]:
    """One digest per interviewer with something today or feedback owed; people with nothing get nothing."""
    day_start, day_end = day_bounds(day)
    today = _interviews(source, "day_interviews", day_start=day_start, day_end=day_end)
    owed = _interviews(source, "owed_feedback", since=day_start - timedelta(days=owed_days), until=day_start)
    per_person: dict[int, dict[str, list[Interview]]] = defaultdict(lambda: {"interviews": [], "owed": []})
    for interview, person in today:
        per_person[person]["interviews"].append(interview)
    for interview, person in owed:
        per_person[person]["owed"].append(interview)
    mapping = lookup(warehouse, list(per_person))
    unmapped = report_unmapped(warehouse, set(per_person), mapping)
    wanted = {u.lower() for u in only_users} if only_users else None
    messages: list[Outgoing] = []
    recipients: dict[str, int] = {}
    for person in sorted(per_person):
        userid = mapping.get(person, (None, ""))[0]
        if userid is None or (wanted is not None and userid not in wanted):
            continue
        recipients[userid] = person
        content = render("digest", language, day=day.isoformat(), **per_person[person])
        messages += personal(f"digest:{day.isoformat()}:{userid}", userid, content, day_end)
    leaders = 0
    if leader_summary:
        summaries = leader_messages(warehouse, day, language, today, mapping, wanted, day_end)
        leaders = len(summaries)
        messages += summaries
    report = {
        "day": day.isoformat(),
        "interviewers": len(recipients),
        "leader_summaries": leaders,
        "unmapped": unmapped,
        "interviews_read": len(today) + len(owed),
    }
    return messages, report


def leader_messages(
    warehouse: Any,
    day: date,
    language: str,
    today: list[tuple[Interview, int]],
    mapping: dict[int, tuple[str | None, str]],
    wanted: set[str] | None,
    expires_at: datetime,
) -> list[Outgoing]:
    """To each leader of an interviewer's main department: the day's interviews in that department."""
    interviewers = {mapping[p][0] for _, p in today if mapping.get(p, (None, ""))[0]}
    rows = warehouse.execute(
        sql.statements(MAPPING)["main_departments"], {"userids": sorted(interviewers)}
    ).fetchall()
    department_of = {userid: dept_id for userid, dept_id, _, _ in rows}
    departments = {dept_id: (name, leaders) for _, dept_id, name, leaders in rows}
    names = {mapping[p][0]: mapping[p][1] for p in mapping if mapping[p][0]}
    by_department: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for interview, person in today:
        userid = mapping.get(person, (None, ""))[0]
        if userid not in department_of:
            continue
        dept_id = department_of[userid]
        entry = by_department[dept_id].setdefault(
            interview.interview_id, {**interview.__dict__, "interviewers": []}
        )
        entry["interviewers"].append(names.get(userid, userid))
    messages = []
    for dept_id, interviews in sorted(by_department.items()):
        name, leaders = departments[dept_id]
        content = render(
            "leader",
            language,
            department=name,
            day=day.isoformat(),
            interviews=sorted(interviews.values(), key=lambda i: i["starts_at"]),
        )
        for leader in sorted({leader.lower() for leader in leaders}):
            if wanted is not None and leader not in wanted:
                continue
            key = f"leader-digest:{day.isoformat()}:{dept_id}:{leader}"
            messages += personal(key, leader, content, expires_at)
    return messages


@dataclass
class Reminders:
    """A reminder window's messages, the cards among them (recorded before sending) and its report."""

    messages: list[Outgoing]
    cards: list[ReminderCard]
    report: dict[str, Any]


def reminder_messages(
    source: Any,
    warehouse: Any,
    window_start: datetime,
    window_end: datetime,
    lead_minutes: int = 30,
    send_stale: bool = False,
    feedback_after_hours: float = 2.0,
    feedback_within_days: int = 7,
    language: str = "zh",
    style: str = "card",
    escalate_minutes: int = 15,
) -> Reminders:
    """Reminders due in [window_start, window_end), escalations of unanswered cards, today's feedback nudges.

    ``style`` card: an answerable card with the markdown reminder as its fallback (for apps WeCom refuses
    cards to); markdown, and for anyone in ``wecom.markdown_only_users``: the markdown reminder.
    """
    if style not in STYLES:
        raise WeComDataError(f"reminder_style must be one of {STYLES}, not {style!r}")
    if escalate_minutes and escalate_minutes >= lead_minutes:
        raise WeComDataError(
            f"escalate_minutes ({escalate_minutes}) must be less than lead_minutes ({lead_minutes}): an"
            " escalation comes after the reminder it escalates (0 turns escalations off)"
        )
    due = _interviews(
        source, "due_reminders", window_start=window_start, window_end=window_end, lead_minutes=lead_minutes
    )
    escalating = (
        _interviews(source, "due_reminders", window_start=window_start, window_end=window_end,
                    lead_minutes=escalate_minutes)
        if escalate_minutes else []
    )  # fmt: skip
    cutoff = window_end - timedelta(hours=feedback_after_hours)
    owed = _interviews(
        source, "owed_feedback", since=cutoff - timedelta(days=feedback_within_days), until=cutoff
    )
    people = [p for _, p in due + escalating + owed]
    mapping = lookup(warehouse, people + [i.recruiter_id for i, _ in due if i.recruiter_id is not None])
    unmapped = report_unmapped(warehouse, set(people), mapping)
    messages, cards = _reminders(warehouse, due, mapping, language, style, send_stale)
    escalations = escalation_messages(warehouse, escalating, mapping, language)
    messages += escalations
    nudges, owed_nudges = _nudges(warehouse, owed, mapping, language, local(window_end).date())
    messages += nudges
    report = {
        "window": [window_start.isoformat(), window_end.isoformat()],
        "reminders_due": len(due),
        "reminder_cards": len(cards),
        "escalations": len(escalations),
        "feedback_owed": owed_nudges,
        "unmapped": unmapped,
        "interviews_read": len(due) + len(escalating) + len(owed),
    }
    return Reminders(messages, cards, report)


def _reminders(
    warehouse: Any,
    due: list[tuple[Interview, int]],
    mapping: dict[int, tuple[str | None, str]],
    language: str,
    style: str,
    send_stale: bool,
) -> tuple[list[Outgoing], list[ReminderCard]]:
    """The reminders due, as cards (with their markdown fallback) or as markdown. A card already recorded
    for its key keeps its ``task_id``: WeCom knows the card by it (it may come from a key written before
    keys were normalised)."""
    markdown_only = _markdown_only(warehouse) if style == "card" else set()
    wanted = [(interview, mapping.get(person, (None, ""))[0]) for interview, person in due]
    keys = {reminder_key(interview, userid) for interview, userid in wanted if userid}
    recorded = (
        dict(warehouse.execute(sql.statements(ANSWERS)["recorded_cards"], {"keys": sorted(keys)}))
        if keys and style == "card" else {}
    )  # fmt: skip
    messages: list[Outgoing] = []
    cards: list[ReminderCard] = []
    for interview, userid in wanted:
        if not userid:
            continue
        key = reminder_key(interview, userid)
        expires = None if send_stale else interview.starts_at  # once it started, a reminder is noise
        content = render("reminder", language, i=interview)
        if style == "markdown" or userid in markdown_only:
            messages += personal(key, userid, content, expires)
            continue
        recruiter = mapping.get(interview.recruiter_id, (None, ""))[0] if interview.recruiter_id else None
        task_id = recorded.get(key) or task_id_for(key)
        card = ReminderCard(task_id, key, userid, interview, recruiter, language)
        cards.append(card)
        messages.append(
            Outgoing(key, userid, reminder_card(task_id, interview, language), expires_at=expires,
                     fallback=markdown(split_markdown(content)[0]))
        )  # fmt: skip
    return messages, cards


def _nudges(
    warehouse: Any,
    owed: list[tuple[Interview, int]],
    mapping: dict[int, tuple[str | None, str]],
    language: str,
    day: date,
) -> tuple[list[Outgoing], int]:
    """Today's feedback nudges not yet settled (every window of the day sees the same owed feedback: only
    those are rendered), and how many are owed."""
    nudges = {}
    for interview, person in owed:
        userid = mapping.get(person, (None, ""))[0]
        if userid:
            nudges[f"feedback:{interview.interview_id}:{userid}:{day.isoformat()}"] = (interview, userid)
    done = settled(warehouse, list(nudges))
    messages: list[Outgoing] = []
    for key, (interview, userid) in nudges.items():
        if key not in done:
            content = render("feedback", language, i=interview, day=day.isoformat())
            messages += personal(key, userid, content, None)
    return messages, len(nudges)


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


def _markdown_only(warehouse: Any) -> set[str]:
    return {userid for (userid,) in warehouse.execute(sql.statements(ANSWERS)["markdown_only"])}


def escalation_messages(
    warehouse: Any,
    escalating: list[tuple[Interview, int]],
    mapping: dict[int, tuple[str | None, str]],
    language: str,
) -> list[Outgoing]:
    """To the interviewer's department leaders: a delivered card nobody answered, the interview about to
    start. Expires at the start (never after it); the ledger key makes it once per reminder. Cards are found
    by their reminder's key, so a card whose ``task_id`` came from a key of the old form is escalated too."""
    reminders = {}
    for interview, person in escalating:
        userid, name = mapping.get(person, (None, ""))
        if userid:
            reminders[reminder_key(interview, userid)] = (interview, userid, name)
    if not reminders:
        return []
    unanswered = {
        key for (key,) in warehouse.execute(
            sql.statements(ANSWERS)["unanswered"], {"keys": sorted(reminders)}
        )
    }  # fmt: skip
    leaders = leaders_of(warehouse, sorted({reminders[k][1] for k in unanswered}))
    messages = []
    for key in sorted(unanswered):
        interview, userid, name = reminders[key]
        if not leaders.get(userid):
            log.warning("No leader to escalate %s's unanswered reminder to (interview %s)", userid,
                        interview.interview_id)  # fmt: skip
            continue
        content = render("escalation", language, i=interview, interviewer=name or userid)
        for leader in leaders[userid]:
            messages += personal(f"escalation:{key.removeprefix('reminder:')}", leader, content,
                                 interview.starts_at)  # fmt: skip
    return messages


def leaders_of(warehouse: Any, userids: list[str]) -> dict[str, list[str]]:
    """The leaders of each member's main department (lowercased, the member left out of their own)."""
    rows = warehouse.execute(sql.statements(MAPPING)["main_departments"], {"userids": userids}).fetchall()
    return {
        userid: sorted({leader.lower() for leader in leaders} - {userid}) for userid, _, _, leaders in rows
    }
