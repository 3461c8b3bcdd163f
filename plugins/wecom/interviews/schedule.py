"""Which day and which window a run is about, whatever started it (schedule, manual, backfill)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from wecom.errors import WeComDataError
from wecom.interviews.render import local

REMINDER_INTERVAL = timedelta(minutes=10)


def run_day(params_day: str | None, context: dict[str, Any]) -> date:
    """The ``day`` param, else the run's logical date (manual runs may have none: then run_after), local."""
    if params_day:
        try:
            return date.fromisoformat(str(params_day))
        except ValueError:
            raise WeComDataError(f"day must be YYYY-MM-DD, not {params_day!r}") from None
    moment = context.get("logical_date") or context["dag_run"].run_after
    return local(moment).date()


def run_window(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """The run's data interval; a manual run without one covers the last complete 10 minutes."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and end > start:
        return start, end
    after = context["dag_run"].run_after
    end = after.replace(second=0, microsecond=0) - timedelta(minutes=after.minute % 10)
    return end - REMINDER_INTERVAL, end
