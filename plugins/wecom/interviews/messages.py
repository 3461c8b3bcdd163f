"""Turn interviews into personal messages: the daily digest, leader summaries, reminders, feedback nudges.

Dedup keys name the business identity, so any re-run (retry, re-trigger, backfill) sends nothing twice:
``digest:<day>:<userid>``, ``leader-digest:<day>:<department>:<leader>``,
``reminder:<interview>:<scheduled start>:<userid>`` (a reschedule is a new reminder),
``feedback:<interview>:<userid>:<local day>`` (at most one nudge a day),
``escalation:<interview>:<scheduled start>:<userid>`` (to each leader, once per reminder).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
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
    nudge_day = local(window_end).date().isoformat()
    markdown_only = _markdown_only(warehouse) if style == "card" else set()
    messages: list[Outgoing] = []
    cards: list[ReminderCard] = []
    for interview, person in due:
        userid = mapping.get(person, (None, ""))[0]
        if not userid:
            continue
        key = reminder_key(interview, userid)
        expires = None if send_stale else interview.starts_at  # once it started, a reminder is noise
        content = render("reminder", language, i=interview)
        if style == "markdown" or userid in markdown_only:
            messages += personal(key, userid, content, expires)
            continue
        recruiter = mapping.get(interview.recruiter_id, (None, ""))[0] if interview.recruiter_id else None
        card = ReminderCard(task_id_for(key), key, userid, interview, recruiter, language)
        cards.append(card)
        fallback = markdown(split_markdown(content)[0])
        messages.append(
            Outgoing(
                key, userid, reminder_card(key, interview, language), expires_at=expires, fallback=fallback
            )
        )
    escalations = escalation_messages(warehouse, escalating, mapping, language)
    messages += escalations
    nudges = {}
    for interview, person in owed:
        userid = mapping.get(person, (None, ""))[0]
        if userid:
            nudges[f"feedback:{interview.interview_id}:{userid}:{nudge_day}"] = (interview, userid)
    # Every window of the day sees the same owed feedback: render only the nudges not yet settled today.
    done = settled(warehouse, list(nudges))
    for key, (interview, userid) in nudges.items():
        if key not in done:
            messages += personal(key, userid, render("feedback", language, i=interview, day=nudge_day), None)
    report = {
        "window": [window_start.isoformat(), window_end.isoformat()],
        "reminders_due": len(due),
        "reminder_cards": len(cards),
        "escalations": len(escalations),
        "feedback_owed": len(nudges),
        "unmapped": unmapped,
        "interviews_read": len(due) + len(escalating) + len(owed),
    }
    return Reminders(messages, cards, report)


def reminder_key(interview: Interview, userid: str) -> str:
    return f"reminder:{interview.interview_id}:{interview.starts_at.isoformat()}:{userid}"


def _markdown_only(warehouse: Any) -> set[str]:
    return {userid for (userid,) in warehouse.execute(sql.statements(ANSWERS)["markdown_only"])}


def escalation_messages(
    warehouse: Any,
    escalating: list[tuple[Interview, int]],
    mapping: dict[int, tuple[str | None, str]],
    language: str,
) -> list[Outgoing]:
    """To the interviewer's department leaders: a delivered card nobody answered, the interview about to
    start. Expires at the start (never after it); the ledger key makes it once per reminder."""
    keys = {}
    for interview, person in escalating:
        userid, name = mapping.get(person, (None, ""))
        if userid:
            keys[task_id_for(reminder_key(interview, userid))] = (interview, userid, name)
    if not keys:
        return []
    unanswered = {
        task_id for (task_id,) in warehouse.execute(
            sql.statements(ANSWERS)["unanswered"], {"task_ids": sorted(keys)}
        )
    }  # fmt: skip
    leaders = leaders_of(warehouse, sorted({keys[t][1] for t in unanswered}))
    messages = []
    for task_id in sorted(unanswered):
        interview, userid, name = keys[task_id]
        if not leaders.get(userid):
            log.warning("No leader to escalate %s's unanswered reminder to (interview %s)", userid,
                        interview.interview_id)  # fmt: skip
            continue
        content = render("escalation", language, i=interview, interviewer=name or userid)
        suffix = reminder_key(interview, userid).removeprefix("reminder:")
        for leader in leaders[userid]:
            messages += personal(f"escalation:{suffix}", leader, content, interview.starts_at)
    return messages


def leaders_of(warehouse: Any, userids: list[str]) -> dict[str, list[str]]:
    """The leaders of each member's main department (lowercased, the member left out of their own)."""
    rows = warehouse.execute(sql.statements(MAPPING)["main_departments"], {"userids": userids}).fetchall()
    return {
        userid: sorted({leader.lower() for leader in leaders} - {userid}) for userid, _, _, leaders in rows
    }
