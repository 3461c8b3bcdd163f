"""
### Interview reminders

Every 10 minutes (at :03, :13, ... Asia/Shanghai, off the :00/:30 rush), for the run's data interval
`[start, end)`:

- a reminder to each interviewer whose interview starts `lead_minutes` (30) after a moment in the interval,
  so consecutive runs neither miss nor repeat one. Cancelled interviews get none; a rescheduled one is
  reminded for its new time (the ledger key includes the scheduled start). With `reminder_style: card`
  (the default) the reminder is an answerable card, **确认参加 / 无法参加**; the answers are processed by
  `interview_answers`. Interviewers in `wecom.markdown_only_users`, and everyone when WeCom refuses cards
  to the app (43012: no callback URL), get the markdown reminder; the ledger row says why;
- an escalation to the interviewer's department leaders when a delivered card is still unanswered
  `escalate_minutes` (15) before the start: once, never after the start (0 turns it off);
- a feedback nudge for interviews that ended more than `feedback_after_hours` (2) ago without this
  interviewer's feedback: at most once a day.

**Changes** (`track_interview_changes`): each run compares the interviews starting within `track_days` (14)
with what was announced (`wecom.interview_versions`). A cancellation, a move, a new room or a panel change
gets one notice per affected interviewer (`change:<interview>:v<version>`), and the reminder cards it made
wrong show 已取消 / 已改期至 … instead of their buttons (a tap on one is recorded as stale, never as an
answer). `sync_calendar` keeps each upcoming interview in the app's WeCom calendar (when the `wecom_default`
connection names a `calendar_organizer` and the `calendar` param is on): added, updated, deleted on
cancellation. What was announced against what is now: `wecom.interview_changes`, `wecom.calendar_sync`.

**Backfill after an outage**: `airflow backfill create --dag-id interview_reminders --reprocess-behavior failed
--from-date A --to-date B` (A and B are interval starts; `failed` re-runs the runs that failed in the outage).
Reminders for interviews that have already started are recorded as `expired` (not sent) unless the backfill
has run conf `{"send_stale": true}` (escalations always expire at the start); reminders still ahead are sent; feedback nudges are sent; re-running
intervals already done sends nothing new (see `wecom.message_log`).

**Preview**: trigger with `dry_run: true` to read the window's messages in the task log and in the task's
result (XCom `return_value`, key `preview`) without sending anything.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task

from wecom.dag_defaults import START_DATE, TIMEZONE, task_defaults
from wecom.interviews import tasks
from wecom.interviews.settings import CALENDAR_REMIND_MINUTES, LANGUAGES, REMINDERS, STYLES

with DAG(
    dag_id="interview_reminders",
    # Every 10 minutes at :03, :13, ...: contiguous intervals, clear of the :00/:30 rush WeCom warns about.
    schedule=CronDataIntervalTimetable("3-59/10 * * * *", timezone=TIMEZONE),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["wecom", "interviews"],
    # 1, then 2 minutes: still ahead of the 30-minute lead.
    default_args=task_defaults(retries=2, retry_delay=timedelta(minutes=1)),
    params={
        "lead_minutes": Param(
            REMINDERS.lead_minutes,
            type="integer",
            minimum=1,
            maximum=1440,
            description="Remind this long before.",
        ),
        "send_stale": Param(
            REMINDERS.send_stale,
            type="boolean",
            description="Send reminders even for interviews already started.",
        ),
        "feedback_after_hours": Param(
            REMINDERS.feedback_after_hours,
            type="number",
            minimum=0,
            description="Nudge for feedback after this long.",
        ),
        "language": Param(REMINDERS.language, enum=list(LANGUAGES), description="Template language."),
        "reminder_style": Param(
            REMINDERS.style,
            enum=list(STYLES),
            description="card: answerable (确认参加 / 无法参加); markdown: a plain message.",
        ),
        "escalate_minutes": Param(
            REMINDERS.escalate_minutes,
            type="integer",
            minimum=0,
            maximum=1439,
            description="Tell the department leader this long before the start when a card is unanswered"
            " (0: never). Less than lead_minutes.",
        ),
        "track_days": Param(
            REMINDERS.track_days,
            type="integer",
            minimum=1,
            maximum=90,
            description="Announce changes to interviews starting within this many days.",
        ),
        "calendar": Param(
            REMINDERS.calendar,
            type="boolean",
            description="Keep interviews in the app's WeCom calendar (needs calendar_organizer on the connection).",
        ),
        "calendar_remind_minutes": Param(
            REMINDERS.calendar_remind_minutes,
            enum=list(CALENDAR_REMIND_MINUTES),
            description="The calendar entry reminds this long before the start (WeCom's allowed offsets).",
        ),
        "dry_run": Param(
            REMINDERS.dry_run,
            type="boolean",
            description="Render and show the messages (task log, result), send nothing.",
        ),
    },
) as dag:

    @task(pool="wecom_api")
    def send_due_reminders(params: dict | None = None) -> dict:
        return tasks.reminders_task(params, get_current_context())

    @task(pool="wecom_api")
    def track_interview_changes(params: dict | None = None) -> dict:
        return tasks.changes_task(params, get_current_context())

    # The calendar follows whatever versions are recorded, even when announcing them is still pending.
    @task(pool="wecom_api", trigger_rule="all_done")
    def sync_calendar(params: dict | None = None) -> dict:
        return tasks.calendar_task(params, get_current_context())

    send_due_reminders()
    track_interview_changes() >> sync_calendar()
