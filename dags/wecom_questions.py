"""
### WeCom questions

The other half of `WeComHITLNotifier`: any DAG's human-in-the-loop task (`ApprovalOperator`, `HITLOperator`,
...) asks in WeCom with a card per person; this DAG brings the answers back. It runs when card taps wait in
the callback inbox (`wecom.callback_events.template_card_event`) or when a question was settled in Airflow
while its cards still show buttons (`wecom.questions.settled_elsewhere`: answered in the UI, timed out,
the task ended), and only then. Each run:

- answers each waiting tap in Airflow (`PATCH .../hitlDetails`, as the `airflow_api` connection's account,
  writing who tapped into `answered_in_wecom_by` when the task declares it) when it is on a card we sent,
  by the person it was sent to, on one of its buttons, with the question still open; anything else is
  recorded with why in `wecom.question_taps` and never reaches Airflow. First answer wins: Airflow's 409 is
  recorded as the decision made elsewhere;
- records decisions made elsewhere (the UI or the API, a timeout's defaults, a task ended unanswered);
- makes every card of a decided question show the decision, by whom and when.

A tap Airflow cannot take yet (its API down, the task not yet waiting) stays in the inbox: the task's retry
and the inbox trigger bring it back. Read `wecom.questions`, `wecom.question_cards`, `wecom.question_taps`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, task

from wecom.assets import CARD_TAPS, QUESTIONS_SETTLED
from wecom.dag_defaults import START_DATE, task_defaults
from wecom.questions import tasks

with DAG(
    dag_id="wecom_questions",
    schedule=(CARD_TAPS | QUESTIONS_SETTLED),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["wecom", "questions"],
    default_args=task_defaults(retries=5, retry_delay=timedelta(seconds=10)),
) as dag:

    @task(pool="wecom_api")
    def settle_questions() -> dict:
        return tasks.settle_questions()

    settle_questions()
