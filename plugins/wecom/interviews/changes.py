"""What changed about an interview since the pipeline announced it, and what to tell whom, decided without a
database: the platform's interview now against the newest version recorded (``wecom.interview_versions``).

Only status, start, end, room and panel make a change; a change undone before the next run is none (the
comparison is with what was announced, not with the platform's ``updated_at``). Each change becomes a new
version; its notices are keyed ``change:<interview>:v<version>`` (one per interviewer), so a retry or a
backfill over the same change sends nothing twice, and changes found in one run are announced in version
order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from wecom.interviews.inputs import Person
from wecom.interviews.render import Interview, local, render, url
from wecom.outbox import Outgoing
from wecom.payloads import markdown, plain, split_markdown

SCHEDULED, CANCELLED = "scheduled", "cancelled"
TRACKED, RESTORED, MOVED, ROOM, PANEL = "tracked", "restored", "moved", "room", "panel"
_FIELDS = (
    "interview_id",
    "status",
    "starts_at",
    "ends_at",
    "room_url",
    "position",
    "candidate_name",
    "panel",
)


@dataclass(frozen=True)
class Version:
    """An interview as announced (``version`` > 0) or as the platform shows it now (``version`` 0)."""

    interview_id: int
    status: str  # scheduled or cancelled (finished counts as scheduled: it happened as announced)
    starts_at: datetime
    ends_at: datetime
    room_url: str | None
    position: str
    candidate_name: str
    panel: tuple[int, ...]  # platform user ids, sorted
    version: int = 0
    changes: tuple[str, ...] = ()

    @property
    def interview(self) -> Interview:
        return Interview(
            self.interview_id,
            self.position,
            self.candidate_name,
            self.starts_at,
            self.ends_at,
            self.room_url,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any], prefix: str = "") -> Version:
        """From a query's row; ``prefix`` names the columns of the version before it (``p_``)."""
        values = {name: row[prefix + name] for name in _FIELDS if name != "interview_id"}
        values["panel"] = tuple(values["panel"])
        number = row.get("version") or 0
        if prefix:
            return cls(row["interview_id"], **values, version=number - 1)
        return cls(row["interview_id"], **values, version=number, changes=tuple(row.get("changes") or ()))

    def row(self) -> dict[str, Any]:
        return {**self.__dict__, "panel": list(self.panel), "changes": list(self.changes)}


def kinds(old: Version, new: Version) -> tuple[str, ...]:
    """What changed from ``old`` to ``new`` (empty: nothing a person needs to hear about)."""
    if old.status != new.status:
        return (CANCELLED,) if new.status == CANCELLED else (RESTORED,)
    if new.status == CANCELLED:
        return ()  # a cancelled interview's time or panel no longer matters
    found = []
    if (old.starts_at, old.ends_at) != (new.starts_at, new.ends_at):
        found.append(MOVED)
    if (old.room_url or "") != (new.room_url or ""):
        found.append(ROOM)
    if old.panel != new.panel:
        found.append(PANEL)
    return tuple(found)


def detect(known: dict[int, Version], current: dict[int, Version]) -> list[Version]:
    """The new versions to record: version 1 for a scheduled interview seen for the first time, the next
    version for each announced one that changed. An announced interview the platform no longer has is
    cancelled. ``current`` must hold every interview in ``known`` that the platform still has."""
    found = []
    for interview_id in sorted(known.keys() | current.keys()):
        old, now = known.get(interview_id), current.get(interview_id)
        if old is None:
            if now is not None and now.status == SCHEDULED:
                found.append(replace(now, version=1, changes=(TRACKED,)))
            continue
        if now is None:
            now = replace(old, status=CANCELLED)
        changed = kinds(old, now)
        if changed:
            found.append(replace(now, version=old.version + 1, changes=changed))
    return found


def notice_key(version: Version) -> str:
    return f"change:{version.interview_id}:v{version.version}"


def _audiences(old: Version, new: Version) -> dict[str, tuple[int, ...]]:
    """Which notice each interviewer gets: what happened to the interview, or to them on its panel."""
    if CANCELLED in new.changes:
        return {CANCELLED: old.panel}
    if RESTORED in new.changes:
        return {RESTORED: new.panel}
    stayed = tuple(p for p in new.panel if p in old.panel)
    audiences = {
        "added": tuple(p for p in new.panel if p not in old.panel),
        "removed": tuple(p for p in old.panel if p not in new.panel),
    }
    if MOVED in new.changes or ROOM in new.changes:
        audiences["updated"] = stayed
    return {kind: people for kind, people in audiences.items() if people}


def notices(
    old: Version, new: Version, who: dict[int, Person], language: str, declined: frozenset[str]
) -> list[Outgoing]:
    """One message per affected interviewer for the change from ``old`` to ``new``, naming the interview.
    A notice about a time that has passed is pointless: it expires at the later of the two starts (a
    cancellation or removal at the old one). ``declined``: interviewers who already declined the old time
    (the notice says so and asks nothing again)."""
    messages = []
    for kind, panel in _audiences(old, new).items():
        expires = old.starts_at if kind in (CANCELLED, "removed") else max(old.starts_at, new.starts_at)
        for platform_user_id in panel:
            person = who.get(platform_user_id)
            if person is None or person.userid is None:
                continue  # unmapped: the reminder runs warn about them
            content = render(
                "change",
                language,
                kind=kind,
                old=old.interview,
                new=new.interview,
                moved=MOVED in new.changes,
                room=ROOM in new.changes,
                declined=person.userid in declined,
            )
            messages.append(
                Outgoing(
                    notice_key(new), person.userid, markdown(split_markdown(content)[0]), expires_at=expires
                )
            )
    return messages


_CORRECTION = {
    "zh": {CANCELLED: "已取消", MOVED: "已改期至 {when}", "removed": "你已不在面试官名单"},
    "en": {CANCELLED: "Cancelled", MOVED: "Moved to {when}", "removed": "You are off the panel"},
}


def correction(new: Version, card_starts_at: datetime, on_panel: bool, language: str) -> str | None:
    """What a reminder card for ``card_starts_at`` shows instead of its buttons once ``new`` is announced
    (None: the card is still right)."""
    text = _CORRECTION[language]
    if new.status == CANCELLED:
        return text[CANCELLED]
    if not on_panel:
        return text["removed"]
    if card_starts_at != new.starts_at:
        return text[MOVED].format(when=local(new.starts_at).strftime("%m-%d %H:%M"))
    return None


DESCRIPTION_LIMIT = 512  # characters: the stricter of WeCom's two documented limits (512, 1000)


def claim_line(claim: str) -> str:
    """The description's last line: what finds a schedule whose id a crash lost (``ends_with_claim``)."""
    return f"ref {claim}"


def ends_with_claim(description: str | None, claim: str) -> bool:
    return (description or "").endswith("\n" + claim_line(claim))


def schedule_fields(
    version: Version, attendees: list[str], claim: str, remind_seconds: int
) -> dict[str, Any]:
    """The whole WeCom schedule for a version (``oa/schedule/update`` overwrites: everything, every time).
    Text is cut on character boundaries (WeCom counts characters): summary and location 128, each
    description field short enough that the description stays within 512 with its claim line whole."""
    room = url(version.room_url)
    room = "-" if room == "#" else room
    candidate, position = (
        _chars(plain(version.candidate_name, 400), 60),
        _chars(plain(version.position, 400), 60),
    )
    fields = [
        f"候选人 Candidate: {candidate}",
        f"岗位 Position: {position}",
        f"面试编号 Interview no.: {version.interview_id}",
        f"面试间 Room: {_chars(room, 250)}",
    ]
    return {
        "start_time": int(version.starts_at.timestamp()),
        "end_time": int(version.ends_at.timestamp()),
        "is_whole_day": 0,
        "attendees": [{"userid": userid} for userid in attendees],
        "summary": _chars(f"面试 Interview: {candidate} · {position}", 128),
        "description": "\n".join([*fields, claim_line(claim)]),
        "location": room if len(room) <= 128 else "ShowMeBug",
        "reminders": {
            "is_remind": 1,
            "remind_before_event_secs": remind_seconds,
            "remind_time_diffs": [-remind_seconds],
            "is_repeat": 0,
        },
        "timezone": 8,
    }


def _chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
