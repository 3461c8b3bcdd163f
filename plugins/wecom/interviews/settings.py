"""What a run of an interview DAG is asked to do: one frozen settings object per DAG, built and checked once
from the run's params. The defaults live here; the DAGs' trigger forms show them (their ``Param`` defaults
are read from these classes), and nothing downstream defaults anything again."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from wecom.errors import WeComDataError
from wecom.interviews.render import LANGUAGES

STYLES = ("card", "markdown")
CALENDAR_REMIND_MINUTES = (0, 5, 15, 60, 1440)  # the only offsets WeCom's schedules take


def _language(language: str) -> None:
    if language not in LANGUAGES:
        raise WeComDataError(f"language must be one of {LANGUAGES}, not {language!r}")


@dataclass(frozen=True)
class DigestSettings:
    """``interview_daily_digest``: the day comes from the run (``schedule.run_day``), the rest from params."""

    language: str = "zh"
    dry_run: bool = False
    only_users: frozenset[str] = frozenset()  # lowercased WeCom userids; empty: everyone
    leader_summary: bool = True
    owed_days: int = 14  # feedback owed for interviews up to this many days back

    def __post_init__(self) -> None:
        _language(self.language)
        object.__setattr__(self, "only_users", frozenset(u.lower() for u in self.only_users))

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DigestSettings:
        return cls(
            language=params.get("language", cls.language),
            dry_run=bool(params.get("dry_run", cls.dry_run)),
            only_users=frozenset(params.get("only_users") or ()),
            leader_summary=bool(params.get("leader_summary", cls.leader_summary)),
        )


@dataclass(frozen=True)
class ReminderSettings:
    """``interview_reminders``: reminders ``lead_minutes`` before the start, escalations ``escalate_minutes``
    before it (0: none), feedback nudges ``feedback_after_hours`` after the end.

    ``style`` card: an answerable card with the markdown reminder as its fallback (for apps WeCom refuses
    cards to); markdown, and for anyone in ``wecom.markdown_only_users``: the markdown reminder.

    Changes to interviews starting within ``track_days`` are announced (notices, cards corrected); with
    ``calendar`` (and a ``calendar_organizer`` on the WeCom connection) each is a schedule in the app's
    WeCom calendar, reminding ``calendar_remind_minutes`` before the start."""

    lead_minutes: int = 30
    escalate_minutes: int = 15
    send_stale: bool = False
    feedback_after_hours: float = 2.0
    feedback_within_days: int = 7
    language: str = "zh"
    style: str = "card"
    dry_run: bool = False
    track_days: int = 14
    calendar: bool = True
    calendar_remind_minutes: int = 15

    def __post_init__(self) -> None:
        _language(self.language)
        if self.style not in STYLES:
            raise WeComDataError(f"reminder_style must be one of {STYLES}, not {self.style!r}")
        if self.escalate_minutes and self.escalate_minutes >= self.lead_minutes:
            raise WeComDataError(
                f"escalate_minutes ({self.escalate_minutes}) must be less than lead_minutes ({self.lead_minutes}):"
                " an escalation comes after the reminder it escalates (0 turns escalations off)"
            )
        if self.calendar_remind_minutes not in CALENDAR_REMIND_MINUTES:
            raise WeComDataError(
                f"calendar_remind_minutes must be one of {CALENDAR_REMIND_MINUTES} (WeCom's schedule"
                f" reminders), not {self.calendar_remind_minutes!r}"
            )
        if not 1 <= self.track_days <= 90:
            raise WeComDataError(f"track_days must be 1-90, not {self.track_days!r}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ReminderSettings:
        """From the run's params (the trigger form's names: ``reminder_style`` is ``style``)."""
        names = {f.name for f in fields(cls)}
        values = {("style" if k == "reminder_style" else k): v for k, v in params.items()}
        types = {f.name: type(getattr(cls(), f.name)) for f in fields(cls)}
        return cls(**{k: types[k](v) for k, v in values.items() if k in names})


DIGEST = DigestSettings()
REMINDERS = ReminderSettings()
