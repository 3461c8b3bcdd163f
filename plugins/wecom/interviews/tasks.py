"""What the interview DAGs' tasks do: ``digest_task`` and ``reminders_task`` take a run's params and context;
``send_digest`` and ``send_reminders`` take plain values (the chaos harness and benchmarks call them)."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from wecom import lineage, warehouse
from wecom.delivery import AppMessages, Claimant, MemberLimits, Sender, Summary
from wecom.errors import WeComTransientError
from wecom.hooks import WeComHook
from wecom.interviews import answers
from wecom.interviews.mapping import refresh_mapping
from wecom.interviews.messages import digest_messages, reminder_messages
from wecom.interviews.schedule import run_day, run_window
from wecom.ledger import Outgoing, record_dry_run

SOURCE_CONN_ID = "interview_source"
PREVIEW_LIMIT = 30
log = logging.getLogger(__name__)


def source_conn_id(preferred: str = SOURCE_CONN_ID) -> str:
    """``interview_source`` when it exists, else the warehouse (the platform's tables live there)."""
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(preferred)
        return preferred
    except Exception:  # noqa: BLE001 - not found (the exception type differs by context)
        return warehouse.WAREHOUSE_CONN_ID


def refresh(source_id: str | None = None, warehouse_id: str = warehouse.WAREHOUSE_CONN_ID) -> dict[str, int]:
    with (
        warehouse.connect(source_id or source_conn_id()) as source,
        warehouse.connect_current(warehouse_id) as wh,
    ):
        return refresh_mapping(source, wh)


def preview(messages: list[Outgoing], limit: int = PREVIEW_LIMIT) -> dict[str, Any]:
    """What a dry run would send, as each reader would see it: in the task log and in the run's result
    (the XCom the UI shows), the first ``limit`` messages and a count of the rest."""
    shown = [{"to": m.recipient, "key": m.dedup_key, "text": m.text()} for m in messages[:limit]]
    for item in shown:
        log.info("Dry run: to %s (%s)\n%s", item["to"], item["key"], item["text"])
    more = max(0, len(messages) - limit)
    if more:
        log.info("Dry run: %d more message(s) not shown; all are in wecom.message_log (dry-run:%%)", more)
    return {"preview": shown, "preview_not_shown": more}


def _deliver(
    messages: list, claimant: Claimant, dry_run: bool, wh: Any, wecom_conn_id: str
) -> dict[str, Any]:
    if dry_run:
        rendered = record_dry_run(wh, messages, claimant)
        return {"dry_run": True, "rendered": rendered, "sent": 0, **preview(messages)}
    sender = Sender(AppMessages(WeComHook(wecom_conn_id)), wh, claimant, limits=MemberLimits())
    summary = Summary()
    summary.add(sender.resume_deferred())  # anything an earlier run deferred under the member limits
    summary.add(sender.send(messages))
    return {"dry_run": False, **{k: v for k, v in summary.to_dict().items() if k != "msgids"}}


def send_digest(
    day: date,
    claimant: Claimant,
    language: str = "zh",
    dry_run: bool = False,
    only_users: list[str] | None = None,
    leader_summary: bool = True,
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    source_id = source_conn_id()
    with warehouse.connect(source_id) as source, warehouse.connect_current(warehouse_id) as wh:
        messages, report = digest_messages(
            source, wh, day, language, set(only_users or []) or None, leader_summary
        )
        _report_lineage(source_id, warehouse_id, report["interviews_read"], len(messages))
        return {
            **report,
            "messages": len(messages),
            **_deliver(messages, claimant, dry_run, wh, wecom_conn_id),
        }


def send_reminders(
    window_start: datetime,
    window_end: datetime,
    claimant: Claimant,
    lead_minutes: int = 30,
    send_stale: bool = False,
    feedback_after_hours: float = 2.0,
    language: str = "zh",
    dry_run: bool = False,
    style: str = "card",
    escalate_minutes: int = 15,
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    source_id = source_conn_id()
    with warehouse.connect(source_id) as source, warehouse.connect_current(warehouse_id) as wh:
        refresh_mapping(source, wh)  # an interviewer added since this morning's digest is reminded too
        due = reminder_messages(
            source,
            wh,
            window_start,
            window_end,
            lead_minutes,
            send_stale,
            feedback_after_hours,
            language=language,
            style=style,
            escalate_minutes=escalate_minutes,
        )
        _report_lineage(source_id, warehouse_id, due.report["interviews_read"], len(due.messages))
        if not dry_run:
            answers.record_cards(wh, due.cards)
        return {
            **due.report,
            "messages": len(due.messages),
            **_deliver(due.messages, claimant, dry_run, wh, wecom_conn_id),
        }


def apply_answers(
    claimant: Claimant,
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Record the waiting reminder answers, tell recruiters of declines, update the answered cards.
    Cards a transient fault left pending fail the task after everything else is done (its retry, or the
    next run, takes them)."""
    hook = WeComHook(wecom_conn_id)
    with warehouse.connect_current(warehouse_id) as wh:
        clicks = answers.record_clicks(wh)
        sender = Sender(AppMessages(hook), wh, claimant, limits=MemberLimits())
        told = answers.notify_declines(sender, wh)
        cards = answers.update_cards(hook, wh)
    result = {
        **{f"clicks_{k}": v for k, v in sorted(clicks.items())},
        **{f"cards_{k}": v for k, v in sorted(cards.items())},
        "decline_messages_sent": told.sent,
    }
    if cards["pending"]:
        raise WeComTransientError.about(
            "message/update_template_card", f"{cards['pending']} card(s) not updated yet: {result}"
        )
    return result


def _report_lineage(source_id: str, warehouse_id: str, interviews: int, messages: int) -> None:
    """Read: the platform's contract view of interviews; written: the delivery ledger."""
    lineage.report(
        send_digest,
        inputs=[(lineage.warehouse_table(source_id, "interview_contract.interviews"), interviews)],
        outputs=[(lineage.warehouse_table(warehouse_id, "wecom.message_log"), messages)],
    )


def digest_task(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """The digest for the run's day (the ``day`` param, else the run's date in Asia/Shanghai)."""
    return send_digest(
        run_day(params["day"], context),
        Claimant.from_context(context),
        language=params["language"],
        dry_run=bool(params["dry_run"]),
        only_users=list(params["only_users"] or []),
        leader_summary=bool(params["leader_summary"]),
    )


def reminders_task(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reminders and feedback nudges due in the run's data interval."""
    start, end = run_window(context)
    return send_reminders(
        start,
        end,
        Claimant.from_context(context),
        lead_minutes=int(params["lead_minutes"]),
        send_stale=bool(params["send_stale"]),
        feedback_after_hours=float(params["feedback_after_hours"]),
        language=params["language"],
        dry_run=bool(params.get("dry_run", False)),
        style=params.get("reminder_style", "card"),
        escalate_minutes=int(params.get("escalate_minutes", 15)),
    )


def answers_task(context: Any) -> dict[str, Any]:
    """What interviewers answered on their reminder cards since the last run."""
    return apply_answers(Claimant.from_context(context))
