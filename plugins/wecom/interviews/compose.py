"""What to send, decided without a database: the daily digest, leader summaries, reminders (answerable
cards or markdown), escalations of unanswered cards and feedback nudges, each under its ledger key
(``wecom.interviews.keys``), from what ``wecom.interviews.inputs`` read and the run's settings."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from wecom.interviews import keys
from wecom.interviews.cards import ReminderCard, reminder_card
from wecom.interviews.inputs import DigestInputs, Person, ReminderInputs, Scheduled
from wecom.interviews.render import Interview, render
from wecom.interviews.settings import DigestSettings, ReminderSettings
from wecom.outbox import Outgoing
from wecom.payloads import markdown, split_markdown, task_id_for

log = logging.getLogger(__name__)


def personal(key: str, userid: str, content: str, expires_at: datetime | None) -> list[Outgoing]:
    """Markdown to one member, in numbered parts (``key#partN``) when longer than WeCom takes at once."""
    parts = split_markdown(content)
    return [
        Outgoing(key if len(parts) == 1 else f"{key}#part{n}", userid, markdown(part), expires_at=expires_at)
        for n, part in enumerate(parts, 1)
    ]


def unmapped_names(unmapped: list[Person]) -> list[str]:
    """For the run's result: who cannot be messaged."""
    return [f"{p.name} (platform user {p.platform_user_id})" for p in unmapped]


def digest_messages(inputs: DigestInputs, settings: DigestSettings) -> tuple[list[Outgoing], dict[str, Any]]:
    """One digest per interviewer with something today or feedback owed; people with nothing get nothing."""
    per_person: dict[Person, dict[str, list[Interview]]] = defaultdict(lambda: {"interviews": [], "owed": []})
    for interview, person in inputs.today:
        per_person[person]["interviews"].append(interview)
    for interview, person in inputs.owed:
        per_person[person]["owed"].append(interview)
    wanted = settings.only_users
    messages: list[Outgoing] = []
    recipients = set()
    for person in sorted(per_person, key=lambda p: p.platform_user_id):
        if person.userid is None or (wanted and person.userid not in wanted):
            continue
        recipients.add(person.userid)
        content = render("digest", settings.language, day=inputs.day.isoformat(), **per_person[person])
        messages += personal(
            keys.digest_key(inputs.day, person.userid), person.userid, content, inputs.expires_at
        )
    summaries = leader_messages(inputs, settings) if settings.leader_summary else []
    report = {
        "day": inputs.day.isoformat(),
        "interviewers": len(recipients),
        "leader_summaries": len(summaries),
        "unmapped": unmapped_names(inputs.unmapped),
        "interviews_read": len(inputs.today) + len(inputs.owed),
    }
    return messages + summaries, report


def leader_messages(inputs: DigestInputs, settings: DigestSettings) -> list[Outgoing]:
    """To each leader of an interviewer's main department: the day's interviews in that department."""
    by_department: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for interview, person in inputs.today:
        if person.userid not in inputs.departments:
            continue
        department = inputs.departments[person.userid]
        entry = by_department[department.department_id].setdefault(
            interview.interview_id, {**interview.__dict__, "interviewers": []}
        )
        entry["interviewers"].append(person.name)
    names = {d.department_id: d for d in inputs.departments.values()}
    messages = []
    for dept_id, interviews in sorted(by_department.items()):
        department = names[dept_id]
        content = render(
            "leader",
            settings.language,
            department=department.name,
            day=inputs.day.isoformat(),
            interviews=sorted(interviews.values(), key=lambda i: i["starts_at"]),
        )
        for leader in sorted({leader.lower() for leader in department.leaders}):
            if settings.only_users and leader not in settings.only_users:
                continue
            key = keys.leader_digest_key(inputs.day, dept_id, leader)
            messages += personal(key, leader, content, inputs.expires_at)
    return messages


@dataclass
class Reminders:
    """A reminder window's messages, the cards among them (recorded before sending) and its report."""

    messages: list[Outgoing]
    cards: list[ReminderCard]
    report: dict[str, Any]


def reminder_messages(inputs: ReminderInputs, settings: ReminderSettings) -> Reminders:
    """Reminders due in the window, escalations of unanswered cards, today's feedback nudges."""
    messages, cards = reminders(inputs, settings)
    escalations = escalation_messages(inputs, settings)
    owed = [(i, p) for i, p in inputs.owed if p.userid]
    nudges = feedback_nudges(owed, inputs.settled, inputs.day, settings.language)
    report = {
        "window": [inputs.window_start.isoformat(), inputs.window_end.isoformat()],
        "reminders_due": len(inputs.due),
        "reminder_cards": len(cards),
        "escalations": len(escalations),
        "feedback_owed": len({keys.feedback_key(i, p.userid, inputs.day) for i, p in owed}),
        "unmapped": unmapped_names(inputs.unmapped),
        "interviews_read": len(inputs.due) + len(inputs.escalating) + len(inputs.owed),
    }
    return Reminders(messages + escalations + nudges, cards, report)


def reminders(
    inputs: ReminderInputs, settings: ReminderSettings
) -> tuple[list[Outgoing], list[ReminderCard]]:
    """The reminders due, as cards (with their markdown fallback) or as markdown. A card already recorded
    for its key keeps its ``task_id``: WeCom knows the card by it (it may come from a key written before
    keys were normalised)."""
    messages: list[Outgoing] = []
    cards: list[ReminderCard] = []
    for interview, person in inputs.due:
        if not person.userid:
            continue
        userid, key = person.userid, keys.reminder_key(interview, person.userid)
        expires = None if settings.send_stale else interview.starts_at  # once it started, a reminder is noise
        content = render("reminder", settings.language, i=interview)
        if settings.style == "markdown" or userid in inputs.markdown_only:
            messages += personal(key, userid, content, expires)
            continue
        recruiter = inputs.recruiters.get(interview.recruiter_id) if interview.recruiter_id else None
        task_id = inputs.recorded_cards.get(key) or task_id_for(key)
        cards.append(
            ReminderCard(task_id, key, userid, interview, recruiter and recruiter.userid, settings.language)
        )
        card = reminder_card(task_id, interview, settings.language)
        fallback = markdown(split_markdown(content)[0])
        messages.append(Outgoing(key, userid, card, expires_at=expires, fallback=fallback))
    return messages, cards


def escalation_messages(inputs: ReminderInputs, settings: ReminderSettings) -> list[Outgoing]:
    """To the interviewer's department leaders: a delivered card nobody answered, the interview about to
    start. Expires at the start (never after it); the ledger key makes it once per reminder. Cards are found
    by their reminder's key, so a card whose ``task_id`` came from a key of the old form is escalated too."""
    escalating = {keys.reminder_key(i, p.userid): (i, p) for i, p in inputs.escalating if p.userid}
    messages = []
    for key in sorted(inputs.unanswered & escalating.keys()):
        interview, person = escalating[key]
        if not inputs.leaders.get(person.userid):
            what = (person.userid, interview.interview_id)
            log.warning("No leader to escalate %s's unanswered reminder to (interview %s)", *what)
            continue
        content = render(
            "escalation", settings.language, i=interview, interviewer=person.name or person.userid
        )
        for leader in inputs.leaders[person.userid]:
            messages += personal(keys.escalation_key(key), leader, content, interview.starts_at)
    return messages


def feedback_nudges(owed: Scheduled, done: frozenset[str], day: date, language: str) -> list[Outgoing]:
    """Today's feedback nudges not yet settled (every window of the day sees the same owed feedback: only
    those are rendered)."""
    nudges = {keys.feedback_key(i, p.userid, day): (i, p.userid) for i, p in owed if p.userid}
    messages: list[Outgoing] = []
    for key, (interview, userid) in nudges.items():
        if key not in done:
            messages += personal(
                key, userid, render("feedback", language, i=interview, day=day.isoformat()), None
            )
    return messages
