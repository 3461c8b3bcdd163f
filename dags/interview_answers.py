"""
### Interview answers

What interviewers answer on their reminder cards (**确认参加 / 无法参加**). WeCom posts each tap to the
callback receiver, which stores it in `wecom.callback_events`; this DAG runs when taps wait there, and only
then (an `AssetWatcher` on `wecom.callback_events.template_card_event`, as for the directory events DAG:
at once on the receiver's NOTIFY, within 10 s if a notice was lost). Each run:

- records each waiting tap in `wecom.reminder_responses`: the first answer recorded wins, duplicates and
  replays change nothing, a tap on a card that is not a reminder (or by someone else) is ignored and its
  event says why (`processed_by`);
- tells the interview's recruiter of each decline, or the interviewer's department leaders where the
  platform names no recruiter: one message each, ledger-keyed `decline:...`;
- turns the card's buttons into the answer ("已确认 09:41" / "已告知无法参加") with the newest unspent
  response code. A card that cannot be updated (codes spent or expired after 72 hours) says why in
  `card_note`; one a transient fault left pending fails the task, whose retry takes it.

Read the answers in `wecom.reminder_status`, `wecom.reminder_declines` and the weekly views (README).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, get_current_context, task

from wecom.assets import CARD_TAPS
from wecom.dag_defaults import START_DATE, task_defaults
from wecom.interviews import tasks

with DAG(
    dag_id="interview_answers",
    schedule=[CARD_TAPS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["wecom", "interviews"],
    default_args=task_defaults(retries=3, retry_delay=timedelta(seconds=20)),
) as dag:

    @task(pool="wecom_api")
    def apply_answers() -> dict:
        return tasks.answers_task(get_current_context())

    apply_answers()
