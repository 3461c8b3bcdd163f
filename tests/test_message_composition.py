"""What the interview DAGs send, decided without a database: ``wecom.interviews.compose`` from hand-made
inputs and settings. No PostgreSQL, no HTTP: these run in milliseconds."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from wecom.errors import WeComDataError
from wecom.interviews import compose, keys
from wecom.interviews.inputs import Department, DigestInputs, Person, ReminderInputs
from wecom.interviews.render import LOCAL_TZ, Interview
from wecom.interviews.settings import DigestSettings, ReminderSettings
from wecom.payloads import task_id_for

DAY = date(2026, 12, 8)
START = datetime(2026, 12, 8, 14, 0, tzinfo=LOCAL_TZ)
ZHANG, LI, WANG = Person(1, "zhangsan", "张三"), Person(2, "lisi", "李四"), Person(3, None, "无人认领")
RECRUITER = Person(9, "hr01", "招聘")
PLATFORM = Department(7, "平台部", ("boss", "zhangsan"))  # zhangsan leads it and interviews too


def interview(n: int, starts_at: datetime = START, recruiter: int | None = None) -> Interview:
    return Interview(
        n, "后端工程师", f"候选人{n}", starts_at, starts_at + timedelta(hours=1), f"https://x/{n}", recruiter
    )


def digest_inputs(**changes) -> DigestInputs:
    values = {
        "day": DAY,
        "today": [(interview(1), ZHANG), (interview(1), LI), (interview(2), WANG)],
        "owed": [(interview(3, START - timedelta(days=2)), LI)],
        "unmapped": [WANG],
        "unreported": frozenset({3}),
        "departments": {"zhangsan": PLATFORM, "lisi": PLATFORM},
    }
    return DigestInputs(**{**values, **changes})


def test_one_digest_per_mapped_interviewer_and_a_summary_to_each_leader():
    messages, report = compose.digest_messages(digest_inputs(), DigestSettings())
    by_key = {m.dedup_key: m for m in messages}
    assert set(by_key) == {
        keys.digest_key(DAY, "zhangsan"),
        keys.digest_key(DAY, "lisi"),
        keys.leader_digest_key(DAY, 7, "boss"),
        keys.leader_digest_key(DAY, 7, "zhangsan"),
    }
    assert "候选人3" in by_key[keys.digest_key(DAY, "lisi")].text()  # the feedback lisi owes
    summary = by_key[keys.leader_digest_key(DAY, 7, "boss")].text()
    assert "候选人1" in summary and "张三" in summary and "李四" in summary and "候选人2" not in summary
    assert all(m.expires_at == datetime(2026, 12, 9, tzinfo=LOCAL_TZ) for m in messages)
    assert report == {"day": "2026-12-08", "interviewers": 2, "leader_summaries": 2,
                      "unmapped": ["无人认领 (platform user 3)"], "interviews_read": 4}  # fmt: skip


def test_only_users_and_no_leader_summary():
    settings = DigestSettings(only_users=frozenset({"LISI"}), leader_summary=False, language="en")
    messages, report = compose.digest_messages(digest_inputs(), settings)
    assert [m.recipient for m in messages] == ["lisi"] and report["leader_summaries"] == 0
    assert messages[0].text().startswith("## Your interviews on 2026-12-08")


def reminder_inputs(**changes) -> ReminderInputs:
    window = (START - timedelta(minutes=35), START - timedelta(minutes=25))
    values = {
        "window_start": window[0],
        "window_end": window[1],
        "due": [(interview(1, recruiter=9), ZHANG), (interview(1, recruiter=9), LI), (interview(1), WANG)],
        "escalating": [(interview(4), ZHANG), (interview(5), LI)],
        "owed": [(interview(6, START - timedelta(days=1)), LI)],
        "recruiters": {9: RECRUITER},
        "unmapped": [WANG],
        "unreported": frozenset(),
        "markdown_only": frozenset({"lisi"}),
        "recorded_cards": {},
        "unanswered": frozenset({keys.reminder_key(interview(4), "zhangsan")}),
        "leaders": {"zhangsan": ["boss"]},
        "settled": frozenset(),
    }
    return ReminderInputs(**{**values, **changes})


def test_reminders_are_cards_but_for_markdown_only_people_and_unanswered_cards_escalate():
    due = compose.reminder_messages(reminder_inputs(), ReminderSettings())
    by_key = {m.dedup_key: m for m in due.messages}
    card_key, markdown_key = (
        keys.reminder_key(interview(1), "zhangsan"),
        keys.reminder_key(interview(1), "lisi"),
    )
    assert by_key[card_key].payload["msgtype"] == "template_card" and by_key[card_key].fallback
    assert by_key[card_key].payload["template_card"]["task_id"] == task_id_for(card_key)
    assert by_key[markdown_key].payload["msgtype"] == "markdown"  # lisi is markdown-only
    assert [(c.dedup_key, c.recruiter_userid) for c in due.cards] == [(card_key, "hr01")]
    escalation = keys.escalation_key(keys.reminder_key(interview(4), "zhangsan"))
    assert by_key[escalation].recipient == "boss" and by_key[escalation].expires_at == interview(4).starts_at
    assert not any(k.startswith("escalation:5:") for k in by_key)  # lisi's card was answered
    nudge = keys.feedback_key(interview(6), "lisi", DAY)
    assert nudge in by_key and by_key[card_key].expires_at == START
    assert (
        due.report["reminders_due"] == 3
        and due.report["escalations"] == 1
        and due.report["feedback_owed"] == 1
    )


def test_a_recorded_card_keeps_its_task_id_and_settled_nudges_are_not_rendered():
    card_key = keys.reminder_key(interview(1), "zhangsan")
    inputs = reminder_inputs(recorded_cards={card_key: "old_task_id"}, settled=frozenset(
        {keys.feedback_key(interview(6), "lisi", DAY)}))  # fmt: skip
    due = compose.reminder_messages(inputs, ReminderSettings(send_stale=True))
    card = next(m for m in due.messages if m.dedup_key == card_key)
    assert card.payload["template_card"]["task_id"] == "old_task_id" and card.expires_at is None
    assert not any(m.dedup_key.startswith("feedback:") for m in due.messages)
    assert due.report["feedback_owed"] == 1  # owed, but already settled today


def test_markdown_style_sends_no_cards():
    due = compose.reminder_messages(reminder_inputs(), ReminderSettings(style="markdown", escalate_minutes=0))
    assert due.cards == [] and {m.payload["msgtype"] for m in due.messages} == {"markdown"}


def test_settings_come_from_the_run_params_once_and_refuse_what_cannot_work():
    settings = ReminderSettings.from_params(
        {"lead_minutes": "45", "reminder_style": "markdown", "dry_run": 1, "unknown": True, "day": None}
    )
    assert settings == ReminderSettings(lead_minutes=45, style="markdown", dry_run=True)
    assert DigestSettings.from_params({"only_users": ["A.B"], "language": "en"}).only_users == {"a.b"}
    with pytest.raises(WeComDataError, match="reminder_style must be one of"):
        ReminderSettings(style="carrier-pigeon")
    with pytest.raises(WeComDataError, match="less than lead_minutes"):
        ReminderSettings(lead_minutes=10, escalate_minutes=10)
    with pytest.raises(WeComDataError, match="language must be one of"):
        DigestSettings(language="fr")
