"""Answerable cards through the hook: the payload and task_id as WeCom accepts them, the response_code
kept from the send, one update per code, and 43012 said plainly. Real HTTP to the simulator."""

from __future__ import annotations

import pytest
from conftest import wecom_conn

from wecom.errors import WeComCallerError, WeComConfigError, WeComItemError
from wecom.hooks import WeComHook
from wecom.payloads import TASK_ID, MessageError, button_card, task_id_for
from wecom_simulator import SimulatorAdmin

BUTTONS = [("确认参加", "confirm"), ("无法参加", "decline")]


def test_task_ids_from_ledger_keys_are_valid_stable_and_distinct():
    keys = ["reminder:42:2026-12-08T10:00:00+08:00:ZhangSan", "reminder:42:2026-12-08T10:00:00+08:00:zhangsan",
            "reminder:" + "长" * 300]  # fmt: skip
    ids = [task_id_for(k) for k in keys]
    assert all(TASK_ID.fullmatch(i) and len(i.encode()) <= 128 for i in ids)
    assert len(set(ids)) == 3 and ids == [task_id_for(k) for k in keys]  # a retry sends the same card


@pytest.mark.parametrize(
    ("task_id", "buttons", "message"),
    [
        ("has space", BUTTONS, "task_id"),
        ("t1", [(str(n), f"k{n}") for n in range(7)], "1 to 6 buttons"),
        ("t1", [("a", "same"), ("b", "same")], "distinct"),
        ("t1", [], "1 to 6 buttons"),
    ],
)
def test_a_card_wecom_would_refuse_is_refused_before_sending(task_id, buttons, message):
    with pytest.raises(MessageError, match=message):
        button_card("面试提醒", task_id, buttons)


def test_a_card_is_sent_updated_once_and_a_missing_callback_url_is_said(simulator, sim_admin, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_DEFAULT", wecom_conn(simulator.url, token_store="memory"))
    hook = WeComHook()
    who = sorted(simulator.state.org.users)[0]
    card = button_card("面试提醒 10:00 后端工程师", task_id_for(f"reminder:42:10:00:{who}"), BUTTONS,
                       fields=[("候选人", "张三")], url="https://www.showmebug.com/pads/42")  # fmt: skip
    with pytest.raises(WeComConfigError, match="callback URL"):
        hook.send_message({"touser": who, **card})
    sim_admin.send_callbacks("http://127.0.0.1:9/wecom/callback", "cardTestToken01", "j" * 43)
    sent = hook.send_message({"touser": who, **card})
    assert sent.msgid and sent.response_code and sent.response_code not in repr(sent)
    with pytest.raises(WeComCallerError):  # the same task_id again: WeCom keeps one card per task
        hook.send_message({"touser": who, **card})
    hook.update_card_buttons(sent.response_code, [who], "已确认 09:41")
    assert SimulatorAdmin(simulator.url).cards()[0]["shown"] == {who: "已确认 09:41"}
    with pytest.raises(WeComItemError, match="used already or expired"):
        hook.update_card_buttons(sent.response_code, [who], "已告知无法参加")
