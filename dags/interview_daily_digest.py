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

**Approval** (opt-in, `require_approval`): before anything is sent, `preview_digests` composes the day's
digests (sending and recording nothing; the first 30 in its log) and `approve_digests` asks the
`approvers` (a list of WeCom userids) in WeCom with a card: the counts per department, one sample message and a
link to the preview, with 批准 Approve / 驳回 Reject buttons (or answer in Airflow's Required Actions page).
Approve sends; Reject sends nothing (`send_digests` is skipped; `wecom.questions` records who rejected and
when); no answer within `approval_timeout_minutes` does what `on_approval_timeout` says (`send` or `skip`).
Taps come back through the `wecom_questions` DAG. Off (the default): no question, the digests go out as before.

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
from wecom.interviews.approval import ON_TIMEOUT, DigestApproval
from wecom.interviews.settings import DIGEST, LANGUAGES
from wecom.notifications import WeComHITLNotifier, deadline_alerts

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
        "require_approval": Param(
            False, type="boolean", description="Ask the approvers in WeCom before sending."
        ),
        "approvers": Param(
            [], type="array", items={"type": "string"}, description="WeCom userids who may approve."
        ),
        "approval_timeout_minutes": Param(
            120, type="number", minimum=1, description="How long to wait for them."
        ),
        "on_approval_timeout": Param(
            "skip", enum=list(ON_TIMEOUT), description="No answer in time: send or skip."
        ),
    },
) as dag:

    @task
    def refresh_user_mapping() -> dict:
        return tasks.refresh()

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def approval_required(params: dict | None = None) -> bool:
        return bool(params and params.get("require_approval"))

    @task
    def preview_digests(params: dict | None = None) -> str:
        return tasks.digest_preview_task(params, get_current_context())

    approve_digests = DigestApproval(
        task_id="approve_digests",
        subject="今日面试摘要待批准 Approve today's interview digests",
        body="{{ ti.xcom_pull(task_ids='preview_digests') }}",
        notifiers=[WeComHITLNotifier(userids="{{ params.approvers | join('|') }}")],
        retries=0,
    )

    @task(pool="wecom_api", trigger_rule="none_failed_min_one_success")
    def send_digests(params: dict | None = None) -> dict:
        return tasks.digest_task(params, get_current_context())

    mapping, send = refresh_user_mapping(), send_digests()
    mapping >> approval_required() >> preview_digests() >> approve_digests >> send
    mapping >> send
