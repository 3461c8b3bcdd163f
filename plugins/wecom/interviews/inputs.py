"""Everything the interview messages are composed from, read in one place: the platform's interviews (its
contract views), who is who (``wecom.user_mapping``), departments and leaders, and what the ledger and the
cards already hold. Reads only; ``wecom.interviews.compose`` turns these into messages without a database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from wecom import sql
from wecom.interviews import keys
from wecom.interviews.render import LOCAL_TZ, Interview, local
from wecom.interviews.settings import DigestSettings, ReminderSettings
from wecom.ledger import settled

QUERIES = "interview/queries.sql"
MAPPING = "interview/mapping.sql"
REMINDERS = "interview/reminders.sql"


@dataclass(frozen=True)
class Person:
    """A platform user as the messages know them: their WeCom userid (lowercased; None: not mapped)."""

    platform_user_id: int
    userid: str | None
    name: str


@dataclass(frozen=True)
class Department:
    """An interviewer's main department, with those of its leaders who are still members."""

    department_id: int
    name: str
    leaders: tuple[str, ...]


Scheduled = list[tuple[Interview, Person]]


@dataclass(frozen=True)
class DigestInputs:
    day: date
    today: Scheduled  # the day's interviews, one row per interviewer
    owed: Scheduled  # earlier interviews whose feedback is owed
    unmapped: list[Person]  # interviewers who cannot be messaged
    unreported: frozenset[int]  # of those, the ones no run has warned about
    departments: dict[str, Department]  # main department of each of today's mapped interviewers

    @property
    def expires_at(self) -> datetime:
        return day_bounds(self.day)[1]


@dataclass(frozen=True)
class ReminderInputs:
    window_start: datetime
    window_end: datetime
    due: Scheduled  # reminders due in the window
    escalating: Scheduled  # escalations due in the window
    owed: Scheduled  # feedback owed
    recruiters: dict[int, Person]
    unmapped: list[Person]
    unreported: frozenset[int]
    markdown_only: frozenset[str]
    recorded_cards: dict[str, str]  # reminder key -> the task_id its card was recorded with
    unanswered: frozenset[str]  # reminder keys of delivered cards nobody answered
    leaders: dict[str, list[str]]  # of the unanswered cards' interviewers
    settled: frozenset[str]  # feedback keys already sent or decided today

    @property
    def day(self) -> date:
        return local(self.window_end).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=LOCAL_TZ)
    return start, start + timedelta(days=1)


def people(warehouse: Any, platform_user_ids: list[int]) -> dict[int, Person]:
    """Each platform user's Person; one unknown to the mapping is unmapped, with no name."""
    rows = warehouse.execute(sql.statements(MAPPING)["lookup"], {"ids": sorted(set(platform_user_ids))})
    found = {pid: Person(pid, userid, name) for pid, userid, name in rows}
    return {pid: found.get(pid, Person(pid, None, "?")) for pid in platform_user_ids}


def _scheduled(source: Any, query: str, **params: Any) -> list[tuple[Interview, int]]:
    rows = source.execute(sql.statements(QUERIES)[query], params).fetchall()
    return [(Interview(*row[:7]), row[7]) for row in rows]


def _with_people(rows: list[tuple[Interview, int]], who: dict[int, Person]) -> Scheduled:
    return [(interview, who[pid]) for interview, pid in rows]


def _unmapped(warehouse: Any, who: dict[int, Person]) -> tuple[list[Person], frozenset[int]]:
    missing = [who[pid] for pid in sorted(who) if who[pid].userid is None]
    if not missing:
        return [], frozenset()
    ids = [p.platform_user_id for p in missing]
    rows = warehouse.execute(sql.statements(MAPPING)["not_yet_reported"], {"ids": ids}).fetchall()
    return missing, frozenset(i for (i,) in rows)


def departments(warehouse: Any, userids: list[str]) -> dict[str, Department]:
    """The main department of each of these members (lowercased userids) and its current leaders."""
    rows = warehouse.execute(sql.statements(MAPPING)["main_departments"], {"userids": sorted(userids)})
    return {userid: Department(dept_id, name, tuple(leaders)) for userid, dept_id, name, leaders in rows}


def leaders_of(warehouse: Any, userids: list[str]) -> dict[str, list[str]]:
    """The leaders of each member's main department (lowercased, the member left out of their own)."""
    return {
        userid: sorted({leader.lower() for leader in department.leaders} - {userid})
        for userid, department in departments(warehouse, userids).items()
    }


def read_digest(source: Any, warehouse: Any, day: date, settings: DigestSettings) -> DigestInputs:
    day_start, day_end = day_bounds(day)
    today = _scheduled(source, "day_interviews", day_start=day_start, day_end=day_end)
    since = day_start - timedelta(days=settings.owed_days)
    owed = _scheduled(source, "owed_feedback", since=since, until=day_start)
    who = people(warehouse, [pid for _, pid in today + owed])
    unmapped, unreported = _unmapped(warehouse, who)
    interviewers = sorted({who[pid].userid for _, pid in today if who[pid].userid})
    main = departments(warehouse, interviewers) if settings.leader_summary else {}
    return DigestInputs(day, _with_people(today, who), _with_people(owed, who), unmapped, unreported, main)


def read_reminders(
    source: Any, warehouse: Any, window_start: datetime, window_end: datetime, settings: ReminderSettings
) -> ReminderInputs:
    window = {"window_start": window_start, "window_end": window_end}
    due = _scheduled(source, "due_reminders", **window, lead_minutes=settings.lead_minutes)
    escalating = (
        _scheduled(source, "due_reminders", **window, lead_minutes=settings.escalate_minutes)
        if settings.escalate_minutes
        else []
    )
    cutoff = window_end - timedelta(hours=settings.feedback_after_hours)
    since = cutoff - timedelta(days=settings.feedback_within_days)
    owed = _scheduled(source, "owed_feedback", since=since, until=cutoff)
    interviewers = [pid for _, pid in due + escalating + owed]
    recruiter_ids = [i.recruiter_id for i, _ in due if i.recruiter_id is not None]
    who = people(warehouse, interviewers + recruiter_ids)
    unmapped, unreported = _unmapped(warehouse, {pid: who[pid] for pid in interviewers})
    due_p, escalating_p, owed_p = (_with_people(rows, who) for rows in (due, escalating, owed))
    cards = _card_inputs(warehouse, due_p, escalating_p, settings)
    nudges = [keys.feedback_key(i, p.userid, local(window_end).date()) for i, p in owed_p if p.userid]
    recruiters = {pid: who[pid] for pid in recruiter_ids}
    done = frozenset(settled(warehouse, nudges))
    return ReminderInputs(
        window_start,
        window_end,
        due_p,
        escalating_p,
        owed_p,
        recruiters,
        unmapped,
        unreported,
        **cards,
        settled=done,
    )


def _card_inputs(
    warehouse: Any, due: Scheduled, escalating: Scheduled, settings: ReminderSettings
) -> dict[str, Any]:
    """What the cards need: who gets markdown, cards recorded before, unanswered cards and their leaders."""
    statements = sql.statements(REMINDERS)
    markdown_only: frozenset[str] = frozenset()
    recorded: dict[str, str] = {}
    due_keys = sorted({keys.reminder_key(i, p.userid) for i, p in due if p.userid})
    if settings.style == "card":
        markdown_only = frozenset(u for (u,) in warehouse.execute(statements["markdown_only"]))
        if due_keys:
            recorded = dict(warehouse.execute(statements["recorded_cards"], {"keys": due_keys}))
    escalation_keys = {keys.reminder_key(i, p.userid): p.userid for i, p in escalating if p.userid}
    unanswered: frozenset[str] = frozenset()
    leaders: dict[str, list[str]] = {}
    if escalation_keys:
        rows = warehouse.execute(statements["unanswered"], {"keys": sorted(escalation_keys)})
        unanswered = frozenset(key for (key,) in rows)
        if unanswered:
            leaders = leaders_of(warehouse, sorted({escalation_keys[k] for k in unanswered}))
    return {
        "markdown_only": markdown_only,
        "recorded_cards": recorded,
        "unanswered": unanswered,
        "leaders": leaders,
    }
