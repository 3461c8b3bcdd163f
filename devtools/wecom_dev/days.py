"""Days for tests and benchmarks that must lie ahead of the machine's clock, whatever the date they run on.

A fixed calendar date ("a Tuesday in the future") turns into the past one day and reminders start to
expire: tests pick their day relative to today instead.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def weekday_ahead(weekday: int, weeks: int = 1, today: date | None = None) -> date:
    """The given weekday (Monday = 0) at least ``weeks`` weeks after today in Asia/Shanghai."""
    today = today or datetime.now(SHANGHAI).date()
    return today + timedelta(days=7 * weeks + (weekday - today.weekday()) % 7)
