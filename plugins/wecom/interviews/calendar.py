"""Every tracked interview in a WeCom calendar the app owns: the one writer of ``wecom.app_calendars``,
``wecom.calendar_entries`` and ``wecom.calendar_log``.

Each run makes every upcoming interview's schedule show its newest version (``wecom.interview_now``):
``oa/schedule/add`` for a new one, ``oa/schedule/update`` (the whole schedule, attendees included) for a
change, ``oa/schedule/del`` for a cancellation. WeCom's ``schedule/add`` has no duplicate check, so an add is
*claimed* first (the claim, a uuid, goes into the schedule's description), called once (never retried
blind) and its id recorded after; a claim left without an id (a worker killed, an answer lost) is settled by
reading the calendar's own list: the schedule carrying the claim is adopted, any second one deleted, and
only when none is there, and the claim is older than any request can take (the connection's connect and
read timeouts: an add sent by a killed worker may still land until then), is it added again. One sync runs
at a time (a session advisory lock)."""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import replace
from typing import Any

from wecom import sql, warehouse
from wecom.errors import (
    CALENDAR_GONE,
    SCHEDULE_FORBIDDEN,
    SCHEDULE_GONE,
    SettingsError,
    WeComAnswerError,
    WeComConfigError,
    WeComRateLimitedError,
    WeComTokenError,
    WeComTransientError,
)
from wecom.hooks import WeComHook
from wecom.interviews import changes
from wecom.interviews.changes import CANCELLED, Version
from wecom.interviews.inputs import people

log = logging.getLogger(__name__)
CALENDAR = "interview/calendar.sql"
SUMMARY = "面试 Interviews"
FORBIDDEN_HELP = (
    "the app may not use WeCom's calendar (日程) API: in the WeCom admin console open 应用管理 → 日程 → "
    "可调用接口的应用 (apps that may call the API), add this app, then clear this task; until then"
    " interviews are not put in calendars (everything else runs)"
)


NOT_NOW = (WeComTransientError, WeComRateLimitedError, WeComTokenError)  # time settles these: stop, retry
CLAIM = re.compile(r"\nref ([0-9a-f-]{36})$")
OTHER_APP = 90466  # on a schedule: not one of ours (e.g. the app changed): it is added again


class CalendarGone(Exception):
    """WeCom no longer knows the app's calendar: retire it; the next attempt creates a new one."""


def _run(conn: Any, name: str, **params: Any) -> Any:
    return conn.execute(sql.statement(CALENDAR, name), params)


def sync_calendar(hook: WeComHook, wh: Any, remind_minutes: int, limit: int = 1000) -> dict[str, Any]:
    """Make the app's calendar agree with the interviews as announced; returns what it did."""
    organizer = hook.settings.calendar_organizer
    if not organizer:
        return {"calendar": "off: the WeCom connection has no calendar_organizer"}
    if not _run(wh, "try_lock").fetchone()[0]:
        return {"calendar": "skipped: another calendar sync is running"}
    try:
        return _sync(hook, wh, organizer.strip(), remind_minutes * 60, limit)
    finally:
        _run(wh, "unlock")


def _sync(hook: WeComHook, wh: Any, organizer: str, remind_seconds: int, limit: int) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    cal_id = None
    try:
        cal_id = _calendar(hook, wh, organizer)
        settle = hook.settings.connect_timeout + hook.settings.read_timeout
        reconciled, in_flight = _reconcile(hook, wh, cal_id, settle)
        counts.update(reconciled)
        # After the calendar and the reconcile: a new calendar or an adopted schedule leaves entries behind.
        rows = warehouse.dict_rows(wh, CALENDAR, "to_sync", {"limit": limit})
        who = _attendees(wh, sorted({p for row in rows for p in row["panel"]}))
        for row in rows:
            if row["interview_id"] in in_flight:
                counts["pending"] += 1  # its add may still land: the next attempt looks again
                continue
            counts[_sync_one(hook, wh, cal_id, row, who, remind_seconds)] += 1
    except WeComConfigError as exc:
        if exc.errcode not in SCHEDULE_FORBIDDEN:
            raise
        for row in rows or warehouse.dict_rows(wh, CALENDAR, "to_sync", {"limit": limit}):
            _failed(wh, row, cal_id, FORBIDDEN_HELP, refused=False)
        raise SettingsError(f"WeCom calendar: {FORBIDDEN_HELP} (errcode {exc.errcode})") from None
    except CalendarGone as exc:
        _run(wh, "retire_calendars", cal_id=cal_id, organizer=organizer, note=str(exc))
        counts["pending"] += 1
    except NOT_NOW as exc:
        log.warning("WeCom calendar not answering (%s): the rest waits for the retry", exc)
        counts["pending"] += 1
    return {"calendar": "on", **{f"calendar_{k}": v for k, v in sorted(counts.items())}}


def _calendar(hook: WeComHook, wh: Any, organizer: str) -> str:
    """The app's current calendar for this organizer, created (and recorded) the first time."""
    found = _run(wh, "current_calendar", organizer=organizer).fetchone()
    if found:
        return found[0]
    for interview_id, schedule_id in _run(wh, "old_calendars_schedules", organizer=organizer).fetchall():
        try:  # the old organizer's calendar goes: its schedules first, or everyone sees each interview twice
            hook.delete_schedule(schedule_id)
        except WeComAnswerError as exc:
            if exc.errcode not in SCHEDULE_GONE + CALENDAR_GONE or isinstance(exc, NOT_NOW):
                raise
        _log(wh, interview_id, None, "delete", schedule_id, f"the calendar organizer is now {organizer}")
    _run(wh, "retire_calendars", cal_id=None, organizer=organizer, note=f"organizer is now {organizer}")
    cal_id = hook.add_calendar(
        organizer, SUMMARY, description="ShowMeBug interviews (Airflow: interview_reminders)"
    )
    _run(wh, "record_calendar", cal_id=cal_id, organizer=organizer)
    log.info("Created the app's interview calendar %s (organizer %s)", cal_id, organizer)
    return cal_id


def _reconcile(hook: WeComHook, wh: Any, cal_id: str, settle: float) -> tuple[Counter[str], set[int]]:
    """Claims left without a schedule id: adopt the schedule carrying the claim; any second schedule carrying
    a known claim (an interrupted add that landed after all) is deleted. Also returns the claims found in no
    schedule yet young enough for an add still in flight."""
    counts: Counter[str] = Counter()
    rows = _run(wh, "claimed", cal_id=cal_id, settle=settle).fetchall()
    if not rows and not _run(wh, "readded_lately").fetchone()[0]:
        return counts, set()
    claimed = {interview_id: claim for interview_id, claim, _ in rows}
    known = {
        claim: (interview_id, schedule_id)
        for claim, interview_id, schedule_id in _run(wh, "known_claims", cal_id=cal_id)
    }
    by_claim: dict[str, list[str]] = defaultdict(list)
    for schedule in _listed(hook, cal_id):
        found = CLAIM.search(schedule.get("description") or "")
        if schedule.get("status", 0) == 0 and found and found.group(1) in known:
            by_claim[found.group(1)].append(str(schedule["schedule_id"]))
    for interview_id, claim in claimed.items():
        if by_claim.get(claim):
            schedule_id = by_claim[claim][0]
            _run(wh, "adopt", interview_id=interview_id, schedule_id=schedule_id)
            _log(wh, interview_id, None, "adopt", schedule_id, "found by its claim after an interrupted add")
            known[claim] = (interview_id, schedule_id)
            counts["adopted"] += 1
    for claim, schedules in by_claim.items():
        interview_id, recorded = known[claim]
        for extra in (s for s in schedules if s != recorded):
            hook.delete_schedule(extra)
            _log(wh, interview_id, None, "remove_duplicate", extra, "a second schedule for the same claim")
            counts["duplicates_removed"] += 1
    in_flight = set()
    for interview_id, is_young in ((i, y) for i, _, y in rows):
        if not by_claim.get(claimed[interview_id]):
            if is_young:
                in_flight.add(interview_id)
            else:  # old enough: the add never reached WeCom; it is made again, and looked for an hour after
                _log(wh, interview_id, None, "readd", None, "no schedule carries the claim: added again")
    return counts, in_flight


def _listed(hook: WeComHook, cal_id: str) -> list[dict[str, Any]]:
    try:
        return hook.calendar_schedules(cal_id)
    except WeComAnswerError as exc:
        if exc.errcode in CALENDAR_GONE:
            raise CalendarGone(str(exc)) from None
        raise


def _sync_one(
    hook: WeComHook, wh: Any, cal_id: str, row: dict[str, Any], who: dict, remind_seconds: int
) -> str:
    version = Version.from_row(row)
    attendees = sorted({who[p].userid for p in version.panel if who[p].userid})
    try:
        if version.status == CANCELLED:
            return _delete(hook, wh, row, version)
        if row["schedule_id"] and row["state"] != "deleted":
            try:
                fields = changes.schedule_fields(version, attendees, row["claim"], remind_seconds)
                hook.update_schedule(row["schedule_id"], fields)
                _synced(wh, version, row["schedule_id"], attendees, "update")
                return "updated"
            except WeComAnswerError as exc:
                if exc.errcode not in (*SCHEDULE_GONE, OTHER_APP) or isinstance(exc, NOT_NOW):
                    raise
                _log(wh, version.interview_id, version.version, "failed", row["schedule_id"], f"gone: {exc}")
        return _add(hook, wh, cal_id, version, attendees, remind_seconds)
    except (*NOT_NOW, WeComConfigError):
        raise
    except WeComAnswerError as exc:
        if exc.errcode in CALENDAR_GONE:
            raise CalendarGone(str(exc)) from None
        _failed(wh, row, cal_id, f"WeCom refused: {exc}", refused=True)
        _log(wh, version.interview_id, version.version, "failed", row["schedule_id"], str(exc))
        return "failed"


def _add(
    hook: WeComHook, wh: Any, cal_id: str, version: Version, attendees: list[str], remind_seconds: int
) -> str:
    claim = _run(wh, "claim", interview_id=version.interview_id, cal_id=cal_id).fetchone()[0]
    fields = changes.schedule_fields(version, attendees, claim, remind_seconds)
    schedule_id = hook.add_schedule(cal_id, fields)  # raises before anything is recorded: the claim stays
    _synced(wh, version, schedule_id, attendees, "add")
    return "added"


def _delete(hook: WeComHook, wh: Any, row: dict[str, Any], version: Version) -> str:
    if row["schedule_id"]:
        try:
            hook.delete_schedule(row["schedule_id"])
        except WeComAnswerError as exc:
            if exc.errcode not in SCHEDULE_GONE:
                raise
    with wh.transaction():
        _run(
            wh,
            "synced",
            interview_id=version.interview_id,
            schedule_id=row["schedule_id"],
            version=version.version,
            state="deleted",
            attendees=None,
            note="cancelled: deleted from the calendar",
        )
        _log(wh, version.interview_id, version.version, "delete", row["schedule_id"], None)
    return "deleted"


def _synced(wh: Any, version: Version, schedule_id: str, attendees: list[str], action: str) -> None:
    with wh.transaction():
        _run(
            wh,
            "synced",
            interview_id=version.interview_id,
            schedule_id=schedule_id,
            version=version.version,
            state="synced",
            attendees=attendees,
            note=None,
        )
        _log(wh, version.interview_id, version.version, action, schedule_id, None)


def _failed(wh: Any, row: dict[str, Any], cal_id: str | None, note: str, refused: bool) -> None:
    _run(wh, "failed", interview_id=row["interview_id"], cal_id=cal_id, note=note, refused=refused)


def _attendees(wh: Any, panel: list[int]) -> dict[int, Any]:
    """Each platform user's Person, with no userid where it is not a current member of the directory."""
    who = people(wh, panel)
    userids = sorted({p.userid for p in who.values() if p.userid})
    current = {u for (u,) in _run(wh, "current_members", userids=userids)}
    return {pid: p if p.userid in current else replace(p, userid=None) for pid, p in who.items()}


def _log(
    wh: Any, interview_id: int, version: int | None, action: str, schedule_id: str | None, note: str | None
) -> None:
    params = {"interview_id": interview_id, "version": version, "action": action, "schedule_id": schedule_id}
    _run(wh, "log", **params, note=note)
