"""Calendars and schedules (日历 / 日程) as WeCom keeps them: ``oa/calendar/*`` and ``oa/schedule/*``.

Written from WeCom's description (shared reference ``wecom-schedule.md``), not from the project's code:
a stand-in that shared the code under test would agree with its mistakes. What matters most:

- ``schedule/add`` has **no duplicate check**: the same body twice makes two schedules.
- ``schedule/update`` **overwrites**: fields left out are cleared, the attendees replaced unless
  ``skip_attendees`` is 1; each update bumps ``sequence``.
- A deleted schedule stays readable (``get`` / ``get_by_calendar``) with ``status`` 1.
- A calendar belongs to the app that created it: another app's calendar answers 90466.

The app of a call is the body's ``agentid`` when given (as WeCom's older third-party suites send it),
else the token's app (``SimulatorConfig.agent_id``): a test makes "another app's calendar" by adding one
with a different ``agentid``. ``schedule/get`` reads any schedule; every other schedule call needs the
schedule's calendar to be the caller's. Not simulated: repeat rules beyond storing them, 90706 (start
moved into the past), calendar/schedule callbacks, default calendars.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from wecom_simulator.org import Org

SHANGHAI = ZoneInfo("Asia/Shanghai")
COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
REMIND_BEFORE = frozenset({0, 300, 900, 3600, 86400})
REMIND_DIFFS = frozenset({0, -300, -900, -3600, -86400})
REMIND_DIFFS_WHOLE_DAY = REMIND_DIFFS | {32400, -172800, -604800}
MAX_ATTENDEES = 1000
MAX_ADMINS = 3
MAX_SHARES = 2000
MAX_IDS = 1000
RESPONSE_STATUSES = frozenset({0, 1, 2, 3})  # none / accepted / tentative / declined


def _err(errcode: int, errmsg: str) -> dict[str, Any]:
    return {
        "errcode": errcode,
        "errmsg": f"{errmsg}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}",
    }


def _ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


class Refused(Exception):
    """A WeCom error answer, raised from deep in the validation."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.answer = _err(errcode, errmsg)


@dataclass
class Calendar:
    cal_id: str
    agentid: int
    organizer: str
    summary: str
    color: str
    description: str = ""
    readonly: int = 1
    shares: list[dict[str, Any]] = field(default_factory=list)
    set_as_default: int = 0
    deleted: bool = False

    def wire(self) -> dict[str, Any]:
        return {"cal_id": self.cal_id, "organizer": self.organizer, "readonly": self.readonly,
                "summary": self.summary, "color": self.color, "description": self.description,
                "shares": [dict(s) for s in self.shares]}  # fmt: skip


@dataclass
class Schedule:
    schedule_id: str
    cal_id: str
    organizer: str
    fields: dict[str, Any]  # summary, description, location, start_time, end_time, is_whole_day, ...
    attendees: dict[str, int]  # userid (as the org spells it) -> response_status, in order added
    sequence: int = 1
    status: int = 0  # 1: deleted
    created_at: float = field(default_factory=time.time)

    def wire(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "cal_id": self.cal_id,
            "organizer": self.organizer,
            **self.fields,
            "attendees": [{"userid": u, "response_status": r} for u, r in self.attendees.items()],
            "sequence": self.sequence,
            "status": self.status,
        }


def _text(value: Any, name: str, limit: int, minimum: int = 0) -> str:
    """A string of ``minimum``..``limit`` characters (not bytes), else 40058."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Refused(40058, f"{name} must be a string")
    if not minimum <= len(value) <= limit:
        raise Refused(40058, f"{name} must hold {minimum} to {limit} characters, not {len(value)}")
    return value


def _int(value: Any, name: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(40058, f"{name} missing or not an integer")
    return value


def _userids(items: Any, name: str) -> list[str]:
    """The userids of a ``[{"userid": ...}]`` list (or plain strings), in order, without repeats."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise Refused(40058, f"{name} must be a list")
    out: dict[str, None] = {}
    for item in items:
        userid = item.get("userid") if isinstance(item, dict) else item
        if not isinstance(userid, str) or not userid:
            raise Refused(40058, f"{name}: userid missing")
        out[userid] = None
    return list(out)


def _member(org: Org, userid: str) -> str:
    """The member's userid as the org spells it; 60111 naming the userid when WeCom does not know it."""
    user = org.users.get(userid.lower())
    if user is None:
        raise Refused(60111, f"userid not found: {userid}")
    return user["userid"]


class Calendars:
    """Every calendar and schedule, in creation order; the caller holds the simulator's lock."""

    ROUTES = {
        "oa/calendar/add": "calendar_add",
        "oa/calendar/update": "calendar_update",
        "oa/calendar/get": "calendar_get",
        "oa/calendar/del": "calendar_del",
        "oa/schedule/add": "schedule_add",
        "oa/schedule/update": "schedule_update",
        "oa/schedule/get": "schedule_get",
        "oa/schedule/get_by_calendar": "schedule_get_by_calendar",
        "oa/schedule/del": "schedule_del",
        "oa/schedule/add_attendees": "schedule_add_attendees",
        "oa/schedule/del_attendees": "schedule_del_attendees",
    }

    def __init__(self) -> None:
        self.calendars: dict[str, Calendar] = {}
        self.schedules: dict[str, Schedule] = {}

    def clear(self) -> None:
        self.calendars.clear()
        self.schedules.clear()

    def call(self, path: str, body: dict[str, Any], org: Org, token_agentid: int) -> dict[str, Any] | None:
        """WeCom's answer to one call, or None when ``path`` is no calendar/schedule API."""
        name = self.ROUTES.get(path)
        if name is None:
            return None
        agentid = body.get("agentid") if isinstance(body.get("agentid"), int) else token_agentid
        try:
            return getattr(self, name)(body, org, agentid)
        except Refused as refused:
            return refused.answer

    # -- calendars ----------------------------------------------------------------------------

    def _calendar_fields(self, section: Any, org: Org) -> dict[str, Any]:
        if not isinstance(section, dict):
            raise Refused(40058, "calendar missing")
        color = section.get("color")
        if not isinstance(color, str) or not COLOR.fullmatch(color):
            raise Refused(90473, f"invalid calendar color {color!r}: #RRGGBB")
        shares = section.get("shares") or []
        if not isinstance(shares, list) or len(shares) > MAX_SHARES:
            raise Refused(40058, f"shares must be a list of at most {MAX_SHARES}")
        readonly = {s.get("userid"): s.get("readonly") for s in shares if isinstance(s, dict)}
        wire_shares = [
            {"userid": _member(org, u), "readonly": _int(readonly.get(u), "shares.readonly", 1)}
            for u in _userids(shares, "shares")
        ]
        return {
            "summary": _text(section.get("summary"), "summary", 128, minimum=1),
            "color": color,
            "description": _text(section.get("description"), "description", 512),
            "readonly": _int(section.get("readonly"), "readonly", 1),
            "shares": wire_shares,
            "set_as_default": _int(section.get("set_as_default"), "set_as_default", 0),
        }

    def _own_calendar(self, cal_id: Any, agentid: int) -> Calendar:
        calendar = self.calendars.get(cal_id) if isinstance(cal_id, str) else None
        if calendar is None:
            raise Refused(90457, f"calendar not found: {cal_id}")
        if calendar.deleted:
            raise Refused(90459, f"calendar deleted: {cal_id}")
        if calendar.agentid != agentid:
            raise Refused(90466, "the calendar was created by another app")
        return calendar

    def calendar_add(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        section = body.get("calendar")
        organizer = section.get("organizer") if isinstance(section, dict) else None
        if not isinstance(organizer, str) or not organizer:
            raise Refused(90456, "organizer missing")
        organizer = _member(org, organizer)
        fields = self._calendar_fields(section, org)
        cal_id = f"wc{secrets.token_hex(15)}"
        self.calendars[cal_id] = Calendar(cal_id=cal_id, agentid=agentid, organizer=organizer, **fields)
        return _ok(cal_id=cal_id)

    def calendar_update(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        """Overwrites the calendar (not a patch); the organizer cannot change."""
        section = body.get("calendar")
        calendar = self._own_calendar(section.get("cal_id") if isinstance(section, dict) else None, agentid)
        organizer = section.get("organizer")
        if organizer and str(organizer).lower() != calendar.organizer.lower():
            raise Refused(90463, "organizer cannot be changed")
        for name, value in self._calendar_fields(section, org).items():
            setattr(calendar, name, value)
        return _ok()

    def calendar_get(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        ids = body.get("cal_id_list")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
            raise Refused(40058, f"cal_id_list must hold 1 to {MAX_IDS} ids")
        out = []
        for cal_id in ids:
            calendar = self.calendars.get(cal_id) if isinstance(cal_id, str) else None
            if calendar is None:
                raise Refused(90457, f"calendar not found: {cal_id}")
            if calendar.deleted:
                raise Refused(90459, f"calendar deleted: {cal_id}")
            out.append(calendar.wire())
        return _ok(calendar_list=out)

    def calendar_del(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        """Deletes the calendar and, with it, its schedules (they stay readable with status 1)."""
        calendar = self._own_calendar(body.get("cal_id"), agentid)
        calendar.deleted = True
        for schedule in self.schedules.values():
            if schedule.cal_id == calendar.cal_id:
                schedule.status = 1
        return _ok()

    # -- schedules ----------------------------------------------------------------------------

    def _schedule_fields(self, section: dict[str, Any], org: Org) -> dict[str, Any]:
        """The stored fields of a schedule as sent (what an update overwrites), validated like WeCom."""
        start = _int(section.get("start_time"), "start_time")
        end = _int(section.get("end_time"), "end_time")
        if end <= start:
            raise Refused(40058, "end_time must be after start_time")
        whole_day = _int(section.get("is_whole_day"), "is_whole_day", 0)
        admins = _userids(section.get("admins"), "admins")
        if len(admins) > MAX_ADMINS:
            raise Refused(40058, f"at most {MAX_ADMINS} admins")
        fields: dict[str, Any] = {
            "summary": _text(section.get("summary"), "summary", 128),
            "description": _text(section.get("description"), "description", 1000),
            "location": _text(section.get("location"), "location", 128),
            "start_time": start,
            "end_time": end,
            "is_whole_day": whole_day,
            "admins": [_member(org, a) for a in admins],
            "reminders": self._reminders(section.get("reminders"), whole_day),
        }
        if section.get("timezone") is not None:
            fields["timezone"] = section["timezone"]
        return fields

    @staticmethod
    def _reminders(reminders: Any, whole_day: int) -> dict[str, Any]:
        if reminders is None:
            return {}
        if not isinstance(reminders, dict):
            raise Refused(40058, "reminders must be an object")
        before = reminders.get("remind_before_event_secs")
        if before is not None and before not in REMIND_BEFORE:
            raise Refused(90471, f"invalid remind_before_event_secs {before!r}")
        diffs = reminders.get("remind_time_diffs")
        allowed = REMIND_DIFFS_WHOLE_DAY if whole_day else REMIND_DIFFS
        if diffs is not None and (not isinstance(diffs, list) or any(d not in allowed for d in diffs)):
            raise Refused(90704, f"invalid remind_time_diffs {diffs!r}")
        return dict(reminders)

    def _attendees(self, items: Any, org: Org) -> list[str]:
        userids = _userids(items, "attendees")
        if len(userids) > MAX_ATTENDEES:
            raise Refused(90464, f"too many attendees: at most {MAX_ATTENDEES}")
        return list(dict.fromkeys(_member(org, u) for u in userids))

    def _schedule(self, schedule_id: Any, agentid: int) -> Schedule:
        """A live schedule of the caller's app (90461 unknown, 90460 deleted, 90466 another app's)."""
        schedule = self.schedules.get(schedule_id) if isinstance(schedule_id, str) else None
        if schedule is None:
            raise Refused(90461, f"invalid schedule_id: {schedule_id}")
        if schedule.status == 1:
            raise Refused(90460, f"schedule already deleted: {schedule_id}")
        calendar = self.calendars.get(schedule.cal_id)
        if calendar is not None and calendar.agentid != agentid:
            raise Refused(90466, "the schedule belongs to another app's calendar")
        return schedule

    def schedule_add(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        section = body.get("schedule")
        if not isinstance(section, dict):
            raise Refused(40058, "schedule missing")
        if not section.get("cal_id"):
            raise Refused(90708, "cal_id missing and the app has no default calendar")
        calendar = self._own_calendar(section["cal_id"], agentid)
        fields = self._schedule_fields(section, org)
        attendees = self._attendees(section.get("attendees"), org)
        schedule_id = secrets.token_hex(16)
        self.schedules[schedule_id] = Schedule(schedule_id=schedule_id, cal_id=calendar.cal_id,
                                               organizer=calendar.organizer, fields=fields,
                                               attendees=dict.fromkeys(attendees, 0))  # fmt: skip
        return _ok(schedule_id=schedule_id)

    def schedule_update(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        section = body.get("schedule")
        if not isinstance(section, dict):
            raise Refused(40058, "schedule missing")
        schedule = self._schedule(section.get("schedule_id"), agentid)
        if section.get("cal_id") and section["cal_id"] != schedule.cal_id:
            raise Refused(90463, "cal_id cannot be changed")
        organizer = section.get("organizer")
        if organizer and str(organizer).lower() != schedule.organizer.lower():
            raise Refused(90463, "organizer cannot be changed")
        fields = self._schedule_fields(section, org)
        if body.get("skip_attendees") == 1:
            attendees = schedule.attendees
        else:  # replaced: who stays keeps their answer
            attendees = {
                u: schedule.attendees.get(u, 0) for u in self._attendees(section.get("attendees"), org)
            }
        schedule.fields, schedule.attendees = fields, attendees
        schedule.sequence += 1
        return _ok()

    def schedule_get(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        """Known schedules, deleted ones too (status 1); unknown ids are left out."""
        ids = body.get("schedule_id_list")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
            raise Refused(40058, f"schedule_id_list must hold 1 to {MAX_IDS} ids")
        found = [self.schedules[i] for i in ids if isinstance(i, str) and i in self.schedules]
        return _ok(schedule_list=[s.wire() for s in found])

    def schedule_get_by_calendar(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        """One page of the calendar's schedules in creation order, deleted ones too; empty: the end."""
        offset, limit = body.get("offset", 0), body.get("limit", 500)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise Refused(90470, f"invalid offset {offset!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise Refused(90469, f"invalid limit {limit!r}: 1 to 1000")
        if not body.get("cal_id"):
            raise Refused(40058, "cal_id missing")
        calendar = self._own_calendar(body["cal_id"], agentid)
        rows = [s for s in self.schedules.values() if s.cal_id == calendar.cal_id]
        return _ok(schedule_list=[s.wire() for s in rows[offset : offset + limit]])

    def schedule_del(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        self._schedule(body.get("schedule_id"), agentid).status = 1
        return _ok()

    def schedule_add_attendees(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        schedule = self._schedule(body.get("schedule_id"), agentid)
        added = self._attendees(body.get("attendees"), org)
        merged = {**schedule.attendees, **{u: schedule.attendees.get(u, 0) for u in added}}
        if len(merged) > MAX_ATTENDEES:
            raise Refused(90464, f"too many attendees: at most {MAX_ATTENDEES}")
        schedule.attendees = merged
        schedule.sequence += 1
        return _ok()

    def schedule_del_attendees(self, body: dict[str, Any], org: Org, agentid: int) -> dict[str, Any]:
        """Removes the listed attendees; members who left the org can be removed too."""
        schedule = self._schedule(body.get("schedule_id"), agentid)
        gone = {u.lower() for u in _userids(body.get("attendees"), "attendees")}
        schedule.attendees = {u: r for u, r in schedule.attendees.items() if u.lower() not in gone}
        schedule.sequence += 1
        return _ok()

    # -- inspection (admin) -------------------------------------------------------------------

    def respond(self, schedule_id: str, userid: str, response_status: int) -> dict[str, Any]:
        """An attendee answers in their calendar: 1 accepted, 2 tentative, 3 declined (0: none)."""
        schedule = self.schedules.get(schedule_id)
        if schedule is None:
            return {"error": f"no schedule {schedule_id}"}
        if response_status not in RESPONSE_STATUSES:
            return {"error": f"response_status must be one of {sorted(RESPONSE_STATUSES)}"}
        for attendee in schedule.attendees:
            if attendee.lower() == userid.lower():
                schedule.attendees[attendee] = response_status
                return {"ok": True, "schedule": schedule.wire()}
        return {"error": f"{userid} is no attendee of {schedule_id}"}

    def view(self, userid: str) -> list[dict[str, Any]]:
        """The live schedules ``userid`` attends, as they see them in their calendar."""
        key = userid.lower()
        rows = []
        for s in self.schedules.values():
            status = next((r for u, r in s.attendees.items() if u.lower() == key), None)
            if s.status != 0 or status is None:
                continue
            f = s.fields
            rows.append({"schedule_id": s.schedule_id, "cal_id": s.cal_id, "organizer": s.organizer,
                         "summary": f["summary"], "start_time": f["start_time"], "end_time": f["end_time"],
                         "start": _iso(f["start_time"]), "end": _iso(f["end_time"]),
                         "is_whole_day": f["is_whole_day"], "location": f["location"],
                         "description": f["description"], "reminders": f["reminders"],
                         "sequence": s.sequence, "response_status": status})  # fmt: skip
        return rows

    def all_schedules(self, include_deleted: bool = True) -> list[dict[str, Any]]:
        return [
            {**s.wire(), "created_at": s.created_at}
            for s in self.schedules.values()
            if include_deleted or s.status == 0
        ]

    def all_calendars(self) -> list[dict[str, Any]]:
        return [{**c.wire(), "agentid": c.agentid, "deleted": c.deleted} for c in self.calendars.values()]


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, SHANGHAI).isoformat()
