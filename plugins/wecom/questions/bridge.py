"""The bridge: taps on question cards answered in Airflow for the person who tapped, decisions made anywhere
recorded once, and every card made to show the decision. Runs in a task, never in the receiver's request.

A tap reaches Airflow only when it is on a card we sent, by the person it was sent to, on one of its
buttons, and the question is still open; anything else is settled with why (``wecom.question_taps``) and
Airflow never hears of it. The receiver has already refused forged and foreign callbacks, and stored each
delivery once (a replay is the same event). The bridge answers with its own Airflow account (assigned
alongside the people, or the task assigns nobody), writing who tapped and when into the declared
``answered_in_wecom_by`` param when the task declares it. Airflow's 409 is "already answered": its decision
is recorded instead. A tap Airflow cannot take yet (its API down, the task not yet waiting) stays in the
inbox, whose trigger fires again until it is settled.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from wecom import sql, warehouse
from wecom.airflow_api import WAITING, AirflowApi, TaskRef, settled
from wecom.cards import record_code, show_each
from wecom.errors import WorkPending
from wecom.hooks import WeComHook
from wecom.questions.cards import answer_params, chosen_option, decision_text

log = logging.getLogger(__name__)
QUESTIONS = "questions/questions.sql"
# Airflow 3.3 fails a task answered within about a second of it starting to wait (the scheduler meets the
# parking process's exit after the answer re-queued it): answer no sooner than this after the question.
SETTLE_SECONDS = 4.0
NOT_YET = {"scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "deferred", "restarting"}


def _statement(name: str) -> str:
    return sql.statement(QUESTIONS, name)


def answer_taps(api: AirflowApi, conn: Any, limit: int = 200) -> Counter[str]:
    """Settle each waiting tap; ``waiting`` counts those left for a later run."""
    counts: Counter[str] = Counter()
    for tap in warehouse.dict_rows(conn, QUESTIONS, "waiting_taps", {"limit": limit}):
        with conn.transaction():
            conn.execute(_statement("lock"))
            decided = conn.execute(_statement("decided_at"), {"question_id": tap["question_id"]}).fetchone()
            tap["decided_at"] = decided[0] if decided else None
            outcome, status, option = _settle(api, conn, tap)
            if outcome == "waiting":
                counts["waiting"] += 1
                continue
            conn.execute(
                _statement("settle_tap"),
                {
                    **{k: tap[k] for k in ("event_id", "card_task_id", "question_id", "userid", "tapped_at")},
                    "option": option,
                    "outcome": outcome,
                    "airflow_status": status,
                },
            )
        counts[outcome] += 1
    return counts


def _settle(api: AirflowApi, conn: Any, tap: dict[str, Any]) -> tuple[str, int | None, str | None]:
    """What becomes of one tap: (outcome, Airflow's status if it was asked, the option)."""
    if tap["card_userid"] is None:
        return "unknown_card", None, None
    if tap["userid"] != tap["card_userid"]:
        return "not_allowed", None, None
    record_code(conn, tap["response_code"], tap["card_task_id"], tap["tapped_at"])
    option = chosen_option(tap["options"], tap["event_key"])
    if option is None or not tap["answerable"]:
        return "not_a_button", None, None
    if tap["decided_at"] is not None:
        conn.execute(_statement("show_again"), {"task_id": tap["card_task_id"]})
        return "already_decided", None, option
    task = TaskRef(tap["dag_id"], tap["run_id"], tap["task_id"], tap["map_index"])
    detail = api.detail(task)
    if _answered_by_us(detail, api.login, option):
        # A crash after Airflow took this tap's answer and before it was recorded: taps are settled in the
        # order they came, so the first one waiting with the option Airflow holds is the one that answered.
        note = "answered by a tap in WeCom (recorded after the bridge was interrupted)"
        _decide(conn, task, "wecom", [option], tap["userid"], tap["tapped_at"], note)
        return "answered", None, option
    if _record_decision(conn, task, detail, api.login):
        conn.execute(_statement("show_again"), {"task_id": tap["card_task_id"]})
        return "already_decided", None, option
    detail = _until_waiting(api, task, detail)
    if detail["task_instance"]["state"] != WAITING:
        return "waiting", None, option  # still not waiting for an answer (or resuming): a later run
    _settle_time(detail)
    params = answer_params(tap["params"], tap["answer_param"], tap["userid"], tap["tapped_at"])
    answer = api.answer(task, [option], params)
    if answer.status == 200:
        _decide(conn, task, "wecom", [option], tap["userid"], tap["tapped_at"], "answered by a tap in WeCom")
        return "answered", 200, option
    if answer.status == 409:
        _record_decision(conn, task, api.detail(task), api.login)
        conn.execute(_statement("show_again"), {"task_id": tap["card_task_id"]})
        return "already_decided", 409, option
    log.warning("Airflow refused the answer to %s (%s): %s", task.question_id, answer.status, answer.detail)
    return "refused_by_airflow", answer.status, option


def _answered_by_us(detail: dict[str, Any] | None, bridge: str, option: str) -> bool:
    if not detail or not detail.get("response_received"):
        return False
    by = detail.get("responded_by_user") or {}
    return by.get("id") == bridge and list(detail.get("chosen_options") or []) == [option]


def _until_waiting(api: AirflowApi, task: TaskRef, detail: dict[str, Any]) -> dict[str, Any]:
    """A tap can beat the task to waiting (its cards go out just before it parks): look again a few times."""
    for _ in range(20):
        if detail["task_instance"]["state"] not in NOT_YET:
            break
        time.sleep(0.5)
        detail = api.detail(task) or detail
    return detail


def _settle_time(detail: dict[str, Any]) -> None:
    asked = _time(detail.get("created_at"))
    wait = SETTLE_SECONDS - (time.time() - asked.timestamp()) if asked else 0.0
    if wait > 0:
        time.sleep(min(wait, SETTLE_SECONDS))


def settle_decisions(api: AirflowApi, conn: Any, limit: int = 500) -> int:
    """Record the decisions of open questions made elsewhere: in Airflow's UI or API, by a timeout, or the
    task ended unanswered. Returns how many were recorded."""
    recorded = 0
    for question in warehouse.dict_rows(conn, QUESTIONS, "open_questions", {"limit": limit}):
        task = TaskRef(question["dag_id"], question["run_id"], question["task_id"], question["map_index"])
        detail = api.detail(task)
        with conn.transaction():
            conn.execute(_statement("lock"))
            recorded += _record_decision(conn, task, detail, api.login)
    return recorded


def _record_decision(conn: Any, task: TaskRef, detail: dict[str, Any] | None, bridge: str) -> bool:
    """Record the decision Airflow holds, if any (True when the question is decided)."""
    now = datetime.now(UTC)
    if detail is None:
        _decide(
            conn, task, "task_ended", None, None, now, "Airflow no longer has this task (the run was deleted)"
        )
        return True
    state = detail["task_instance"]["state"]
    if detail.get("response_received"):
        at = _time(detail.get("responded_at")) or now
        chosen = list(detail.get("chosen_options") or [])
        user = detail.get("responded_by_user") or None
        if user is None:
            _decide(conn, task, "timeout", chosen, None, at, "timed out: Airflow chose the defaults")
        elif user.get("id") == bridge:  # ours, with its record lost (a crash after the answer)
            who = str((detail.get("params_input") or {}).get("answered_in_wecom_by") or "").split(" @ ")[0]
            _decide(conn, task, "wecom", chosen, who or None, at, "answered from WeCom (recorded afterwards)")
        else:
            name = str(user.get("name") or user.get("id"))
            _decide(conn, task, "airflow", chosen, name, at, "answered in Airflow")
        return True
    if settled(detail):
        why = f"the task ended {state} without an answer (timed out without defaults, failed or cleared)"
        _decide(conn, task, "task_ended", None, None, now, why)
        return True
    return False


def _decide(
    conn: Any, task: TaskRef, via: str, chosen: list[str] | None, by: str | None, at: datetime, note: str
) -> None:
    params = {"question_id": task.question_id, "decided_at": at, "chosen": chosen, "decided_by": by}
    conn.execute(_statement("decide"), {**params, "decided_via": via, "note": note})


def show_decisions(hook: WeComHook, conn: Any, limit: int = 1000) -> Counter[str]:
    """Make every card of a decided question show the decision instead of its buttons."""
    cards = warehouse.dict_rows(conn, QUESTIONS, "cards_to_show", {"limit": limit})

    def text(c: dict[str, Any]) -> str:
        return decision_text(c["decided_via"], c["chosen"], c["decided_by"], c["decided_at"], c["language"])

    return show_each(hook, conn, cards, text, _statement("card_outcome"))


def settle(api: AirflowApi, hook: WeComHook, conn: Any) -> dict[str, Any]:
    """One bridge run: taps, decisions made elsewhere, cards. Raises ``WorkPending`` (after doing the rest)
    when taps or cards are left for later; cards of decided questions are shown even with Airflow's API down."""
    left: list[str] = []
    try:
        taps = answer_taps(api, conn)
    except WorkPending as exc:
        taps = Counter({"waiting": 1})
        left.append(str(exc))
    try:
        decided = settle_decisions(api, conn)
    except WorkPending as exc:
        decided = 0
        left.append(str(exc))
    cards = show_decisions(hook, conn)
    report = {
        **{f"taps_{k}": v for k, v in sorted(taps.items())},
        "decided_elsewhere": decided,
        **{f"cards_{k}": v for k, v in sorted(cards.items())},
    }
    if taps["waiting"] or cards["pending"] or left:
        raise WorkPending(f"left for later: {report} {' '.join(left)}".strip())
    return report


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
