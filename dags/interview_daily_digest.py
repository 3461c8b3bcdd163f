"""
### Interview daily digest

Every morning each interviewer gets one WeCom message: today's interviews in local time (time, duration,
candidate, position, room link) and the feedback they still owe. People with nothing get nothing. Each
department leader gets a summary of the day's interviews in their department (`leader_summary`).

- **refresh_user_mapping** links platform users to WeCom userids (`wecom.user_mapping`: manual overrides in
  `wecom.user_mapping_overrides` win, then a unique email, then a unique mobile; never names). Interviewers
  without a mapping are listed in the log, the run's result and `wecom.unmapped_interviewers`.
- **send_digests** (pool `wecom_api`) renders `include/templates/digest.<language>.md.j2` and sends through
  the delivery ledger: key `digest:<day>:<userid>`, so a scheduled, manual or re-triggered run for the same
  day never sends anyone the same digest twice.

Params: `day` (YYYY-MM-DD, default the run's day in Asia/Shanghai), `dry_run` (a preview: render, show the
messages in the task log and the task's result (XCom `return_value`, key `preview`; the first 30 and a count
of the rest), record them in `wecom.message_log` with status skipped, send nothing), `only_users` (userids), `language` (zh or en),
`leader_summary`.

Schedule: 07:47 Asia/Shanghai (WeCom asks apps to avoid :00 and :30); set `WECOM_DIGEST_CRON` to change it.
**Deadline**: if the run has not succeeded by 08:30 (`WECOM_DIGEST_DEADLINE`, HH:MM Asia/Shanghai), the
alert targets (`WECOM_ALERT_USERS`, `WECOM_ALERT_WEBHOOK_CONN_ID`) get one WeCom alert (Airflow's deadline
alerts, sent from the triggerer).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, get_current_context, task

from wecom.dag_defaults import START_DATE, TIMEZONE, task_defaults
from wecom.interviews import tasks
from wecom.interviews.settings import DIGEST, LANGUAGES
from wecom.notifications import deadline_alerts

CRON = os.environ.get("WECOM_DIGEST_CRON", "47 7 * * *")

with DAG(
    dag_id="interview_daily_digest",
    schedule=CronTriggerTimetable(CRON, timezone=TIMEZONE),
    # One alert if the day's digests have not been delivered by this time (08:30 Asia/Shanghai).
    deadline=deadline_alerts(CRON, os.environ.get("WECOM_DIGEST_DEADLINE", "08:30")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["wecom", "interviews"],
    # An outage gets 2, 4, 8 minutes (the scheduler caps the delay).
    default_args=task_defaults(retries=3, retry_delay=timedelta(minutes=2)),
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to digest (default: the run's day).",
        ),
        "dry_run": Param(
            DIGEST.dry_run,
            type="boolean",
            description="Preview: render and show the messages (task log, result), send nothing.",
        ),
        "only_users": Param(
            [], type="array", items={"type": "string"}, description="Only these WeCom userids."
        ),
        "language": Param(DIGEST.language, enum=list(LANGUAGES), description="Template language."),
        "leader_summary": Param(
            DIGEST.leader_summary, type="boolean", description="Also send each department leader a summary."
        ),
    },
) as dag:

    @task
    def refresh_user_mapping() -> dict:
        return tasks.refresh()

    @task(pool="wecom_api")
    def send_digests(params: dict | None = None) -> dict:
        return tasks.digest_task(params, get_current_context())

    refresh_user_mapping() >> send_digests()
