"""Asking: a human-in-the-loop task's question becomes a card for each person who may answer it, recorded
before it is sent (a tap always finds its question) and sent through the ledger (once per question and
person: a retry of the task sends nothing twice).

Who is asked: the notifier's ``userids`` and the task's ``assigned_users`` whose id is a current WeCom member
(by userid, else by email), each once. Nobody mapped: a warning, and the task stays answerable in Airflow.
"""

from __future__ import annotations

import logging
from typing import Any

from wecom import sql, warehouse
from wecom.airflow_api import AirflowApi, TaskRef
from wecom.delivery import AppMessages, Sender
from wecom.hooks import WeComHook
from wecom.outbox import Claimant, Outgoing
from wecom.questions.cards import Question, card, fallback

log = logging.getLogger(__name__)
QUESTIONS = "questions/questions.sql"


def question_from(context: Any, language: str, bridge_login: str | None) -> Question:
    """The question as the asking task holds it (its template fields already rendered)."""
    task, ti = context["task"], context["ti"]
    assigned = [str(u.get("id")) for u in (task.assigned_users or [])]
    try:
        link = task.generate_link_to_ui_from_context(context=context)
    except ValueError:  # no [api] base_url: the cards cannot link to Airflow
        link = None
    return Question(
        task=TaskRef(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1)),
        subject=str(task.subject or ""),
        body=str(task.body or ""),
        options=tuple(str(o) for o in task.options),
        multiple=bool(task.multiple),
        params=tuple(task.serialized_params),
        ui_link=link,
        language=language,
        bridge_allowed=bridge_login is not None and (not assigned or bridge_login in assigned),
    )


def ask(
    context: Any,
    *,
    userids: list[str],
    language: str,
    wecom_conn_id: str,
    warehouse_conn_id: str,
    airflow_api_conn_id: str,
) -> dict[str, Any]:
    """Send the asking task's question to everyone who may answer; what was done, for the task's log."""
    bridge_login = _bridge_login(airflow_api_conn_id)
    question = question_from(context, language, bridge_login)
    assigned = [str(u.get("id")) for u in (context["task"].assigned_users or []) if u.get("id")]
    with warehouse.connect_current(warehouse_conn_id) as conn:
        members = dict(
            conn.execute(sql.statement(QUESTIONS, "members"), {"names": [*userids, *assigned]}).fetchall()
        )
        recipients = sorted({members[name] for name in [*userids, *assigned] if name in members})
        unmapped = sorted({name for name in userids if name not in members})
        if unmapped:
            log.warning("Not WeCom members (not asked): %s", ", ".join(unmapped))
        if not recipients:
            log.warning(
                "Nobody to ask in WeCom for %s: give the notifier userids, or assign users whose id is a WeCom"
                " userid or email. The task can still be answered in Airflow.",
                question.task.question_id,
            )
            return {"asked": 0, "unmapped": unmapped}
        if not question.answerable:
            log.info(
                "The cards of %s link to Airflow only (%s)",
                question.task.question_id,
                _why_link_only(question),
            )
        _record(conn, question, recipients)
        messages = [
            Outgoing(question.key, u, card(question, u), fallback=fallback(question)) for u in recipients
        ]
        summary = Sender(AppMessages(WeComHook(wecom_conn_id)), conn, Claimant.from_context(context)).send(
            messages
        )
    return {
        "asked": len(recipients),
        "sent": summary.sent,
        "already_sent": summary.already_done,
        "skipped": summary.skipped,
        "answerable_in_wecom": question.answerable,
        "unmapped": unmapped,
    }


def _record(conn: Any, question: Question, recipients: list[str]) -> None:
    """The question and a card per recipient, in one transaction, before any card is sent."""
    cards = [
        {
            "task_id": question.card_task_id(u),
            "question_id": question.task.question_id,
            "userid": u,
            "dedup_key": question.key,
        }
        for u in recipients
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.statement(QUESTIONS, "record_question"), question.row())
        cur.executemany(sql.statement(QUESTIONS, "record_card"), cards)


def _bridge_login(conn_id: str) -> str | None:
    """The bridge's Airflow account; None (cards link to Airflow only) when its connection is missing."""
    try:
        return AirflowApi(conn_id).login
    except Exception as exc:  # noqa: BLE001 - a missing connection must not stop the question
        log.warning(
            "No usable Airflow API connection %r (%s): the cards link to Airflow, taps cannot answer",
            conn_id,
            type(exc).__name__,
        )
        return None


def _why_link_only(question: Question) -> str:
    if not question.bridge_allowed:
        return "the bridge's Airflow account is not among the task's assigned_users"
    if question.multiple:
        return "several options may be chosen"
    if set(question.params) - {question.answer_param}:
        return "params to fill in"
    return "more options than 6, or an option longer than a button"
