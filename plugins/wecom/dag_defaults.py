"""What every DAG of the project shares, so no DAG file repeats it (and none loses it): the local time zone
for its schedule, a fixed start date, and its tasks' defaults, among them the failure alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

from wecom.local import TIMEZONE
from wecom.notifications import alert_callbacks

__all__ = ["START_DATE", "TIMEZONE", "task_defaults"]

START_DATE = pendulum.datetime(
    2026, 1, 1, tz=TIMEZONE
)  # fixed: a date that moved would make new DAG versions


def task_defaults(retries: int, retry_delay: timedelta) -> dict[str, Any]:
    """Every DAG's ``default_args``: retries that back off exponentially (2x) and, on a task's final
    failure, the alert to the deployment's targets. The one place that says every task alerts."""
    return {
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": 2.0,
        "on_failure_callback": alert_callbacks(),
    }
