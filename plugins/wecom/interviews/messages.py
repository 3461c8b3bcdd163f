"""Turn interviews into personal messages: the daily digest, leader summaries, reminders, feedback nudges.

Dedup keys name the business identity, so any re-run (retry, re-trigger, backfill) sends nothing twice:
``digest:<day>:<userid>``, ``leader-digest:<day>:<department>:<leader>``,
``reminder:<interview>:<scheduled start>:<userid>`` (a reschedule is a new reminder),
``feedback:<interview>:<userid>:<local day>`` (at most one nudge a day).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from wecom import sql
from wecom.interviews.mapping import MAPPING, QUERIES, lookup, report_unmapped
from wecom.interviews.render import LOCAL_TZ, Interview, local, render
from wecom.ledger import Outgoing, settled
from wecom.messages import markdown, split_markdown

log = logging.getLogger(__name__)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=LOCAL_TZ)
    return start, start + timedelta(days=1)


def _interviews(source: Any, query: str, **params: Any) -> list[tuple[Interview, int]]:
    rows = source.execute(sql.statements(QUERIES)[query], params).fetchall()
    return [(Interview(*row[:6]), row[6]) for row in rows]


def _personal(key: str, userid: str, content: str, expires_at: datetime | None) -> list[Outgoing]:
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
        messages += _personal(f"digest:{day.isoformat()}:{userid}", userid, content, day_end)
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
            messages += _personal(key, leader, content, expires_at)
    return messages


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
) -> tuple[list[Outgoing], dict[str, Any]]:
    """Reminders due in [window_start, window_end) and today's feedback nudges."""
    due = _interviews(
        source, "due_reminders", window_start=window_start, window_end=window_end, lead_minutes=lead_minutes
    )
    cutoff = window_end - timedelta(hours=feedback_after_hours)
    owed = _interviews(
        source, "owed_feedback", since=cutoff - timedelta(days=feedback_within_days), until=cutoff
    )
    mapping = lookup(warehouse, [p for _, p in due] + [p for _, p in owed])
    unmapped = report_unmapped(warehouse, {p for _, p in due} | {p for _, p in owed}, mapping)
    nudge_day = local(window_end).date().isoformat()
    messages: list[Outgoing] = []
    for interview, person in due:
        userid = mapping.get(person, (None, ""))[0]
        if userid:
            key = f"reminder:{interview.interview_id}:{interview.starts_at.isoformat()}:{userid}"
            expires = None if send_stale else interview.starts_at  # once it started, a reminder is noise
            messages += _personal(key, userid, render("reminder", language, i=interview), expires)
    nudges = {}
    for interview, person in owed:
        userid = mapping.get(person, (None, ""))[0]
        if userid:
            nudges[f"feedback:{interview.interview_id}:{userid}:{nudge_day}"] = (interview, userid)
    # Every window of the day sees the same owed feedback: render only the nudges not yet settled today.
    done = settled(warehouse, list(nudges))
    for key, (interview, userid) in nudges.items():
        if key not in done:
            messages += _personal(key, userid, render("feedback", language, i=interview, day=nudge_day), None)
    feedback = len(nudges)
    report = {
        "window": [window_start.isoformat(), window_end.isoformat()],
        "reminders_due": len(due),
        "feedback_owed": feedback,
        "unmapped": unmapped,
        "interviews_read": len(due) + len(owed),
    }
    return messages, report
