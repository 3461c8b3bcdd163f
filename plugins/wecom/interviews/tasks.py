"""What the interview DAGs' tasks do, and the one place they write: the user mapping, who was warned about
being unmapped, the reminder cards, the ledger (through the Sender, or a dry run's preview).

``digest_task`` and ``reminders_task`` take a run's params and context and build the run's settings once;
``send_digest`` and ``send_reminders`` take plain values and settings (the chaos harness and benchmarks call
them); ``plan_digest`` and ``plan_reminders`` read (``inputs``) and compose (``compose``) a run's messages.
A dry run writes nothing but its preview (and the user mapping, which is derived data)."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from wecom import lineage, sql, warehouse
from wecom.delivery import AppMessages, MemberLimits, Sender, Summary
from wecom.errors import WorkPending
from wecom.hooks import WeComHook
from wecom.interviews import announce, answers, approval, calendar, compose, inputs
from wecom.interviews.mapping import refresh_mapping
from wecom.interviews.schedule import run_day, run_window
from wecom.interviews.settings import DIGEST, REMINDERS, DigestSettings, ReminderSettings
from wecom.ledger import record_dry_run
from wecom.outbox import Claimant, Outgoing

SOURCE_CONN_ID = "interview_source"
APPROVAL = "interview/approval.sql"
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


def preview(messages: list[Outgoing], limit: int = PREVIEW_LIMIT, recorded: bool = True) -> dict[str, Any]:
    """What a dry run would send, as each reader would see it: in the task log and in the run's result
    (the XCom the UI shows), the first ``limit`` messages and a count of the rest (``recorded``: a dry
    run records them all in the ledger; an approval's preview records nothing)."""
    shown = [{"to": m.recipient, "key": m.dedup_key, "text": m.text()} for m in messages[:limit]]
    for item in shown:
        log.info("Dry run: to %s (%s)\n%s", item["to"], item["key"], item["text"])
    more = max(0, len(messages) - limit)
    if more:
        where = (
            "all are in wecom.message_log (dry-run:%)" if recorded else "a dry run of the DAG shows them all"
        )
        log.info("Dry run: %d more message(s) not shown; %s", more, where)
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


def plan_digest(source: Any, wh: Any, day: date, settings: DigestSettings) -> tuple[list[Outgoing], dict]:
    """The day's digests and leader summaries, and the run's report; remembers whom it warned about."""
    read = inputs.read_digest(source, wh, day, settings)
    messages, report = compose.digest_messages(read, settings)
    warn_unmapped(wh, read.unmapped, read.unreported, remember=not settings.dry_run)
    return messages, report


def plan_reminders(
    source: Any, wh: Any, window_start: datetime, window_end: datetime, settings: ReminderSettings
) -> compose.Reminders:
    """The window's reminders, escalations and nudges; remembers whom it warned about."""
    read = inputs.read_reminders(source, wh, window_start, window_end, settings)
    due = compose.reminder_messages(read, settings)
    warn_unmapped(wh, read.unmapped, read.unreported, remember=not settings.dry_run)
    return due


def warn_unmapped(wh: Any, unmapped: list[inputs.Person], unreported: frozenset[int], remember: bool) -> None:
    """The log warns only about interviewers no earlier run warned about: the same list every ten minutes
    would be noise. A real run remembers them (``wecom.unmapped_reported``); a dry run only looks."""
    if not unmapped:
        return
    new = [p for p in unmapped if p.platform_user_id in unreported]
    if not new:
        log.info(
            "%d interviewer(s) without a WeCom mapping, none new (wecom.unmapped_interviewers)", len(unmapped)
        )
        return
    log.warning(
        "%d new interviewer(s) without a WeCom mapping get nothing: %s. %d in all: SELECT * FROM "
        "wecom.unmapped_interviewers; map someone with a row in wecom.user_mapping_overrides.",
        len(new),
        ", ".join(sorted(compose.unmapped_names(new))),
        len(unmapped),
    )
    if remember:
        ids = sorted(p.platform_user_id for p in new)
        wh.execute(sql.statements(inputs.MAPPING)["remember_reported"], {"ids": ids})


def send_digest(
    day: date,
    claimant: Claimant,
    settings: DigestSettings = DIGEST,
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    source_id = source_conn_id()
    with warehouse.connect(source_id) as source, warehouse.connect_current(warehouse_id) as wh:
        messages, report = plan_digest(source, wh, day, settings)
        _report_lineage(source_id, warehouse_id, report["interviews_read"], len(messages))
        return {
            **report,
            "messages": len(messages),
            **_deliver(messages, claimant, settings.dry_run, wh, wecom_conn_id),
        }


def send_reminders(
    window_start: datetime,
    window_end: datetime,
    claimant: Claimant,
    settings: ReminderSettings = REMINDERS,
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    source_id = source_conn_id()
    with warehouse.connect(source_id) as source, warehouse.connect_current(warehouse_id) as wh:
        # An interviewer added since this morning's digest is reminded too (and previewed: the mapping is
        # derived from the platform's users, not a record of this run, so a dry run refreshes it as well).
        refresh_mapping(source, wh)
        due = plan_reminders(source, wh, window_start, window_end, settings)
        _report_lineage(source_id, warehouse_id, due.report["interviews_read"], len(due.messages))
        if not settings.dry_run:
            answers.record_cards(wh, due.cards)
        return {
            **due.report,
            "messages": len(due.messages),
            **_deliver(due.messages, claimant, settings.dry_run, wh, wecom_conn_id),
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
        corrected = answers.correct_cards(hook, wh)  # a tap on a superseded card shows its correction again
    result = {
        **{f"clicks_{k}": v for k, v in sorted(clicks.items())},
        **{f"cards_{k}": v for k, v in sorted(cards.items())},
        **{f"corrections_{k}": v for k, v in sorted(corrected.items())},
        "decline_messages_sent": told.sent,
    }
    if cards["pending"] or corrected["pending"]:
        raise WorkPending(f"{cards['pending'] + corrected['pending']} card(s) not updated yet: {result}")
    return result


def track_changes(
    since: datetime,
    claimant: Claimant,
    settings: ReminderSettings = REMINDERS,
    run_id: str | None = None,
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Find what changed about the interviews ahead of ``since``, tell the interviewers, correct the cards."""
    if settings.dry_run:
        return {"dry_run": True, "changes": "not tracked in a dry run (nothing is recorded)"}
    hook = WeComHook(wecom_conn_id)
    with warehouse.connect(source_conn_id()) as source, warehouse.connect_current(warehouse_id) as wh:
        refresh_mapping(source, wh)  # who is who now: an interviewer added to a panel is told too
        report = announce.detect_changes(source, wh, since, settings.track_days, run_id)
        sender = Sender(AppMessages(hook), wh, claimant, limits=MemberLimits())
        report |= announce.announce_changes(hook, wh, sender, settings.language)
    if report.get("cards_pending"):
        raise WorkPending(f"{report['cards_pending']} card(s) not corrected yet: {report}")
    return report


def sync_calendar(
    settings: ReminderSettings = REMINDERS,
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Make the app's WeCom calendar show every upcoming interview as announced."""
    if not settings.calendar or settings.dry_run:
        return {"calendar": "off: the run's calendar param is false" if not settings.calendar else "dry run"}
    with warehouse.connect_current(warehouse_id) as wh:
        result = calendar.sync_calendar(WeComHook(wecom_conn_id), wh, settings.calendar_remind_minutes)
    if result.get("calendar_pending"):
        raise WorkPending(f"the calendar is not in step yet (WeCom did not answer): {result}")
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
    settings = DigestSettings.from_params(params)
    return send_digest(run_day(params.get("day"), context), Claimant.from_context(context), settings)


def digest_preview_task(params: dict[str, Any], context: Any) -> str:
    """The approval's body for the run's day: what the digests would be, composed and not sent or recorded."""
    settings = DigestSettings.from_params({**params, "dry_run": True})
    day = run_day(params.get("day"), context)
    with warehouse.connect(source_conn_id()) as source, warehouse.connect_current() as wh:
        messages, _ = plan_digest(source, wh, day, settings)
        recipients = [m.recipient.lower() for m in messages]
        counts = [
            tuple(row)
            for row in wh.execute(sql.statement(APPROVAL, "per_department"), {"userids": recipients})
        ]
    preview(
        messages, recorded=False
    )  # the first 30 in the task's log: the approval links to this task's page
    sample = (messages[0].recipient, messages[0].text()) if messages else None
    ti = context["ti"]
    link = _task_page(ti.dag_id, ti.run_id, ti.task_id)
    return approval.preview_body(day, recipients, counts, sample, link, settings.language)


def _task_page(dag_id: str, run_id: str, task_id: str) -> str | None:
    """The task's page in Airflow's UI (its result holds the preview), when Airflow knows its own URL."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback=None)
    return f"{base.rstrip('/')}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}" if base else None


def reminders_task(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reminders and feedback nudges due in the run's data interval."""
    start, end = run_window(context)
    return send_reminders(start, end, Claimant.from_context(context), ReminderSettings.from_params(params))


def changes_task(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """Interview changes found since the run's data interval (cancellations, moves, panels) announced."""
    _, end = run_window(context)
    run_id = getattr(context.get("dag_run"), "run_id", None)
    return track_changes(end, Claimant.from_context(context), ReminderSettings.from_params(params), run_id)


def calendar_task(params: dict[str, Any], context: Any) -> dict[str, Any]:
    return sync_calendar(ReminderSettings.from_params(params))


def answers_task(context: Any) -> dict[str, Any]:
    """What interviewers answered on their reminder cards since the last run."""
    return apply_answers(Claimant.from_context(context))
