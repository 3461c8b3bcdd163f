"""The ledger, the per-member limiter, the operator, the notifier and the robot hook, end to end."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pendulum
import psycopg
import pytest
from conftest import ROOT, conn_json, load_dag

from wecom import warehouse
from wecom.delivery import AppMessages, MemberLimits, Sender
from wecom.errors import WeComConfigError, WeComError
from wecom.hooks import WeComHook
from wecom.outbox import Claimant, Outgoing
from wecom.payloads import markdown, text
from wecom.webhook import WeComWebhookHook
from wecom_simulator import SimulatorConfig, WeComSimulator, generate_org

ROBOT_KEY = SimulatorConfig().webhook_keys[0]


@pytest.fixture
def conn(connections):
    with warehouse.connect_current() as connection:
        yield connection


def ledger(conn, *columns):
    return conn.execute(f"SELECT {', '.join(columns)} FROM wecom.message_log ORDER BY message_id").fetchall()  # noqa: S608


def users(simulator, n):
    return [u["userid"].lower() for u in list(simulator.state.org.users.values())[:n]]


class Crash(BaseException):
    """The worker dies."""


class SendThenDie:
    """WeCom accepts the message, then the worker dies before the ledger records it."""

    def __init__(self, hook: WeComHook) -> None:
        self.hook = hook

    def deliver(self, m: Outgoing):
        AppMessages(self.hook).deliver(m)
        raise Crash


def test_partial_success_records_invalid_recipients_and_delivers_the_rest(conn, simulator, sim_admin):
    people = users(simulator, 3)
    messages = [Outgoing(f"k:{u}", u, text(f"hi {u}")) for u in [*people, "ghost"]]
    summary = Sender(AppMessages(WeComHook()), conn).send(messages)
    assert summary.sent == 3 and summary.skipped == 1
    assert sorted(m["userid"] for m in sim_admin.messages()) == sorted(people)
    rows = dict((r, (s, reason)) for r, s, reason in ledger(conn, "recipient", "status", "reason"))
    assert rows["ghost"][0] == "skipped" and "not a valid recipient" in rows["ghost"][1]
    assert all(rows[u][0] == "sent" for u in people)


def test_the_same_notice_to_several_members_is_one_send_and_a_row_each(conn, simulator, sim_admin):
    people = users(simulator, 3)
    notice = markdown("面试已取消")
    messages = [Outgoing("change:7:v2", u, notice) for u in [*people, "ghost"]]
    messages.append(Outgoing("change:7:v2", "other", markdown("你已不在面试官名单")))  # other bytes: own send
    messages.append(Outgoing("reminder:7", people[0], notice))  # another key: its own send
    before = sim_admin.calls("message/send")
    summary = Sender(AppMessages(WeComHook()), conn).send(messages)
    assert sim_admin.calls("message/send") - before == 3
    assert (summary.sent, summary.skipped) == (4, 2)
    rows = {
        (k, r): (s, msgid, reason)
        for k, r, s, msgid, reason in ledger(conn, "dedup_key", "recipient", "status", "msgid", "reason")
    }
    shared = {rows[("change:7:v2", u)][1] for u in people}
    assert len(shared) == 1 and None not in shared  # one message/send, recorded for each member
    assert (
        rows[("change:7:v2", "ghost")][0] == "skipped"
        and "not a valid recipient" in rows[("change:7:v2", "ghost")][2]
    )
    assert rows[("change:7:v2", "other")][0] == "skipped"  # not a member of this org: its own 81013
    assert sorted(
        m["userid"] for m in sim_admin.messages() if "取消" in json.dumps(m, ensure_ascii=False)
    ) == sorted([*people, people[0]])
    again = Sender(AppMessages(WeComHook()), conn, Claimant("d", "run2", "t")).send(messages)
    assert again.already_done == 6 and sim_admin.calls("message/send") - before == 3


def test_a_batch_never_cuts_a_shared_send_in_two(conn, simulator, sim_admin):
    people = users(simulator, 4)
    messages = [Outgoing("change:8:v2", u, text("面试已取消")) for u in people[:3]]
    messages.append(Outgoing("digest:x", people[3], text("今日面试")))
    before = sim_admin.calls("message/send")
    summary = Sender(AppMessages(WeComHook()), conn, batch_size=2).send(messages)
    assert summary.sent == 4 and sim_admin.calls("message/send") - before == 2


def test_a_retry_or_a_second_run_sends_nothing_twice(conn, simulator, sim_admin):
    people = users(simulator, 5)
    messages = [Outgoing(f"digest:2026-11-30:{u}", u, markdown("今日面试")) for u in people]
    first = Sender(AppMessages(WeComHook()), conn, Claimant("d", "run1", "t")).send(messages)
    retry = Sender(AppMessages(WeComHook()), conn, Claimant("d", "run1", "t")).send(messages)
    other_run = Sender(AppMessages(WeComHook()), conn, Claimant("d", "run2", "t")).send(messages)
    assert (first.sent, retry.sent, other_run.sent) == (5, 0, 0)
    assert retry.already_done == other_run.already_done == 5
    assert len(sim_admin.messages()) == 5
    assert {row[0] for row in ledger(conn, "body_hash")} and all(
        preview == "今日面试" for (preview,) in ledger(conn, "preview")
    )


def test_a_crash_between_send_and_record_is_absorbed_by_the_duplicate_check(conn, simulator, sim_admin):
    person = users(simulator, 1)[0]
    message = Outgoing("reminder:42:2026-11-30T10:00", person, text("10:00 面试提醒"))
    hook = WeComHook()

    sender = Sender(SendThenDie(hook), conn, Claimant("d", "r", "t"))
    with pytest.raises(Crash):
        sender.send([message])
    assert ledger(conn, "status") == [("pending",)]
    summary = Sender(AppMessages(hook), conn, Claimant("d", "r", "t")).send([message])  # the task's retry
    assert summary.sent == 1
    assert len(sim_admin.messages()) == 1 and sim_admin.stats()["duplicates_absorbed"] == 1
    assert ledger(conn, "status", "attempts") == [("sent", 2)]


def test_a_shared_send_retried_after_a_crash_is_the_same_bytes_whatever_the_plan(conn, simulator, sim_admin):
    """The retry's members come in another order and one of them has less room in their window now: the
    send is composed again member for member, at the slot all of them have room at, and WeCom absorbs it."""
    people = users(simulator, 3)
    notice = markdown("面试已改期 Moved")
    messages = [Outgoing("change:9:v3", u, notice) for u in people]
    limits = MemberLimits(per_minute=2, time_scale=60, max_wait=5)
    hook = WeComHook()

    with pytest.raises(Crash):
        Sender(SendThenDie(hook), conn, Claimant("d", "r", "t"), limits=limits).send(messages)
    busy = people[1]  # two more messages fill this member's (scaled) minute
    Sender(AppMessages(hook), conn, limits=limits).send(
        [Outgoing(f"other:{i}", busy, text(f"x{i}")) for i in (1, 2)]
    )
    retry = Sender(AppMessages(hook), conn, Claimant("d", "r", "t"), limits=limits).send(messages[::-1])
    assert retry.sent == 3 and retry.deferred == 0
    told = [m for m in sim_admin.messages() if "改期" in json.dumps(m, ensure_ascii=False)]
    assert sorted(m["userid"].lower() for m in told) == sorted(people)  # once each
    assert sim_admin.stats()["duplicates_absorbed"] == 1
    recorded = {msgid for key, msgid in ledger(conn, "dedup_key", "msgid") if key == "change:9:v3"}
    assert recorded == {m["msgid"] for m in told}


def test_a_shared_send_whose_retry_must_wait_is_deferred_whole_and_resumed_as_the_same_bytes(
    conn, simulator, sim_admin
):
    """A lost answer, then a retry that finds one member's window full: the whole send is deferred (through
    the ledger's jsonb, which reorders keys), and resuming it sends what the first attempt sent."""
    people = users(simulator, 3)
    messages = [Outgoing("change:10:v2", u, text("面试已取消 Cancelled")) for u in people]
    limits = MemberLimits(per_minute=2, time_scale=60, max_wait=0.3)
    hook = WeComHook()

    with pytest.raises(Crash):
        Sender(SendThenDie(hook), conn, Claimant("d", "r", "t"), limits=limits).send(messages)
    Sender(AppMessages(hook), conn, limits=limits).send([Outgoing("other", people[2], text("x"))])  # full
    retry = Sender(AppMessages(hook), conn, Claimant("d", "r", "t"), limits=limits).send(messages)
    assert (retry.sent, retry.deferred) == (0, 3)  # all three wait, none goes alone
    resumed, deadline = 0, time.monotonic() + 15
    while resumed < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
        resumed += Sender(AppMessages(hook), conn, limits=limits).resume_deferred().sent
    assert resumed == 3
    told = [m for m in sim_admin.messages() if "Cancelled" in json.dumps(m, ensure_ascii=False)]
    assert sorted(m["userid"].lower() for m in told) == sorted(people)  # once each
    assert sim_admin.stats()["duplicates_absorbed"] == 1
    assert {msgid for key, msgid in ledger(conn, "dedup_key", "msgid") if key == "change:10:v2"} == {
        m["msgid"] for m in told
    }


def test_a_resumed_message_an_error_left_pending_is_resumed_again(conn, simulator, sim_admin):
    person = users(simulator, 1)[0]
    limits = MemberLimits(per_minute=1, time_scale=60, max_wait=0.3)
    hook = WeComHook()
    first, later = (Outgoing(f"digest:{n}", person, text(f"digest {n}")) for n in (1, 2))
    assert Sender(AppMessages(hook), conn, limits=limits).send([first, later]).deferred == 1

    class Down:
        def deliver(self, m: Outgoing):
            raise WeComError("WeCom is down (HTTP 502)")

    time.sleep(1.2)
    with pytest.raises(WeComError):
        Sender(Down(), conn, Claimant("d", "resume", "t"), limits=limits).resume_deferred()
    assert ledger(conn, "dedup_key", "status")[1] == ("digest:2", "pending")
    sent, deadline = 0, time.monotonic() + 15
    while not sent and time.monotonic() < deadline:  # the failed attempt counts in the window: it may wait
        sent = (
            Sender(AppMessages(hook), conn, Claimant("d", "resume", "t"), limits=limits)
            .resume_deferred()
            .sent
        )
        time.sleep(0.3)
    assert sent == 1  # found, though it was no longer 'deferred'
    assert [m["userid"].lower() for m in sim_admin.messages()] == [person, person]


def test_another_tasks_fresh_claim_is_left_alone(conn, simulator, sim_admin):
    person = users(simulator, 1)[0]
    message = Outgoing("k", person, text("x"))
    conn.execute(
        "INSERT INTO wecom.message_log (dedup_key, recipient, claimed_by, claimed_at, attempts)"
        " VALUES ('k', %s, 'other/task/run/-1', clock_timestamp(), 1)",
        (person,),
    )
    assert Sender(AppMessages(WeComHook()), conn, Claimant("d", "r", "t")).send([message]).already_done == 1
    assert sim_admin.messages() == []


@pytest.fixture
def fast_simulator():
    """WeCom's windows divided by 60: a minute lasts a second."""
    org = generate_org(users=5, departments=1, seed=3)
    with WeComSimulator(org, SimulatorConfig(time_scale=60)) as sim:
        yield sim


def test_the_per_member_limit_spaces_and_defers_instead_of_dropping(fast_simulator, db_url, monkeypatch):
    from conftest import postgres_conn, wecom_conn

    monkeypatch.setenv("AIRFLOW_CONN_WECOM_DEFAULT", wecom_conn(fast_simulator.url, token_store="memory"))
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAREHOUSE", postgres_conn(db_url))
    person = next(iter(fast_simulator.state.org.users))
    limits = MemberLimits(time_scale=60, max_wait=1.5)
    messages = [Outgoing(f"burst:{i}", person, text(f"message {i}")) for i in range(75)]
    with warehouse.connect_current() as conn:
        started = time.monotonic()
        summary = Sender(AppMessages(WeComHook()), conn, limits=limits).send(messages)
        elapsed = time.monotonic() - started
        assert summary.sent == 60 and summary.deferred == 15  # two scaled minutes' worth, the rest deferred
        assert elapsed >= 1.0  # the 31st waited for the window to move
        stats = fast_simulator.state.stats()
        assert stats["silent_drops"] == 0 and stats["delivered"] == 60
        deferred = conn.execute(
            "SELECT count(*) FROM wecom.message_log WHERE status = 'deferred'"
        ).fetchone()[0]
        assert deferred == 15
        time.sleep(1.1)
        resumed = Sender(AppMessages(WeComHook()), conn, limits=limits).resume_deferred()
        assert resumed.sent + resumed.deferred == 15
        while resumed.deferred:
            time.sleep(1.1)
            resumed = Sender(AppMessages(WeComHook()), conn, limits=limits).resume_deferred()
        assert fast_simulator.state.stats()["silent_drops"] == 0
        assert fast_simulator.state.stats()["delivered"] == 75
        assert (
            conn.execute(
                "SELECT count(*) FROM wecom.message_log WHERE deferred_payload IS NOT NULL"
            ).fetchone()[0]
            == 0
        )


def test_expired_messages_are_recorded_not_sent(conn, simulator, sim_admin):
    person = users(simulator, 1)[0]
    past = pendulum.now("UTC").subtract(minutes=5)
    summary = Sender(AppMessages(WeComHook()), conn).send(
        [Outgoing("late", person, text("too late"), expires_at=past)]
    )
    assert summary.expired == 1 and sim_admin.messages() == []
    assert ledger(conn, "status") == [("expired",)]


def test_webhook_hook_sends_and_fails_fast_on_permanent_errors(simulator, sim_admin, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ROBOT", conn_json("wecom_webhook", host=simulator.url, password=ROBOT_KEY)
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_GONE", conn_json("wecom_webhook", host=simulator.url, password="removed-robot-key")
    )
    WeComWebhookHook("robot").send(markdown("**deploy** done", 4096))
    assert sim_admin.robot_messages()[0]["content"] == "**deploy** done"
    with pytest.raises(WeComConfigError) as gone:
        WeComWebhookHook("gone").send(text("x"))
    assert gone.value.errcode == 93000
    sim_admin.set_robot(ROBOT_KEY, disabled=True)
    with pytest.raises(WeComConfigError) as disabled:
        WeComWebhookHook("robot").send(text("x"))
    assert disabled.value.errcode == 93004
    for leaked in (ROBOT_KEY, "removed-robot-key"):
        assert leaked not in caplog.text and leaked not in str(gone.value) + str(disabled.value)


def test_webhook_hook_keeps_to_twenty_a_minute(monkeypatch):
    with WeComSimulator(generate_org(3, 1), SimulatorConfig(time_scale=60)) as sim:
        monkeypatch.setenv("AIRFLOW_CONN_ROBOT", conn_json("wecom_webhook", host=sim.url, password=ROBOT_KEY))
        hook = WeComWebhookHook("robot", window_seconds=1.03)
        for i in range(25):
            hook.send(text(f"alert {i}"))  # would be 45009 without the spacing
        assert sim.state.stats()["robot_messages"] == 25


# -- operator and notifier through real DAG runs ----------------------------------------------

TEST_DAGS = ROOT / "tests" / "dags"


def test_operator_sends_once_returns_result_and_fails_when_everyone_is_invalid(
    airflow_db, connections, simulator, sim_admin, caplog, capfd
):
    people = users(simulator, 2)
    dag = load_dag(TEST_DAGS, "wecom_operator_test")
    run = dag.test(run_conf={"users": "|".join([*people, "ghost"])})
    assert run.get_state() == "success"
    result = run.get_task_instance("send").xcom_pull(task_ids="send")
    assert result["sent"] == 1 and result["invalid_users"] == ["ghost"] and len(result["msgids"]) == 1
    delivered = sim_admin.messages()
    assert sorted(m["userid"] for m in delivered) == sorted(people)
    assert "**上线完成** 20" in delivered[0]["content"]  # templated
    secrets = [simulator.state.config.secret, *simulator.state.tokens]
    assert not any(s in json.dumps(result) or s in caplog.text for s in secrets)

    bad = load_dag(TEST_DAGS, "wecom_operator_text")
    assert bad.test(run_conf={"users": "ghost1|ghost2"}).get_state() == "failed"
    task_log = capfd.readouterr().out
    assert "every recipient is invalid (81013)" in task_log
    assert not any(s in task_log for s in [simulator.state.config.secret, *simulator.state.tokens])
    with psycopg.connect(connections["warehouse"]) as conn:
        skipped = conn.execute(
            "SELECT status, errcode FROM wecom.message_log WHERE dedup_key LIKE 'wecom_operator_text%'"
        )
        assert skipped.fetchall() == [("skipped", 81013)]


def test_notifier_alerts_once_per_final_failure(airflow_db, connections, simulator, sim_admin):
    on_call = users(simulator, 1)[0]
    dag = load_dag(TEST_DAGS, "wecom_notifier_test")
    assert dag.test(run_conf={"on_call": on_call}).get_state() == "failed"
    alerts = sim_admin.messages(on_call)
    assert len(alerts) == 1
    content = alerts[0]["content"]
    assert "wecom_notifier_test" in content and "explode" in content and "Try: 1" in content
    assert "warehouse unreachable" in content and "second line" not in content


def test_notifier_can_alert_a_group_robot(airflow_db, connections, simulator, sim_admin, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPS_ROBOT", conn_json("wecom_webhook", host=simulator.url, password=ROBOT_KEY)
    )
    dag = load_dag(TEST_DAGS, "wecom_robot_alert")
    assert dag.test().get_state() == "failed"
    robot = sim_admin.robot_messages()
    assert len(robot) == 1 and "boom" in robot[0]["content"]
    with psycopg.connect(connections["warehouse"]) as conn:
        assert conn.execute("SELECT status FROM wecom.message_log").fetchall() == [("sent",)]


def test_a_missed_deadline_alerts_once_when_awaited_as_the_triggerer_does(
    connections, simulator, sim_admin, monkeypatch
):
    """The triggerer imports the callback, calls it with its kwargs and a simple context, and awaits it."""
    import asyncio

    from airflow.sdk import AsyncCallback
    from airflow.triggers.callback import CallbackTrigger

    from wecom.notifications import WeComWebhookNotifier

    monkeypatch.setenv(
        "AIRFLOW_CONN_OPS_ROBOT", conn_json("wecom_webhook", host=simulator.url, password=ROBOT_KEY)
    )
    callback = AsyncCallback(WeComWebhookNotifier, kwargs={"wecom_webhook_conn_id": "ops_robot"})
    context = {
        "dag_run": {
            "dag_id": "interview_daily_digest",
            "dag_run_id": "scheduled__2026-11-30",
            "state": "failed",
        },
        "deadline": {"id": "d-1", "deadline_time": "2026-11-30T00:30:00+00:00"},
    }

    async def fire() -> list:
        trigger = CallbackTrigger(callback.path, {**callback.kwargs, "context": dict(context)})
        return [event.payload async for event in trigger.run()]

    first, again = asyncio.run(fire()), asyncio.run(fire())  # a callback queued twice
    assert first[-1]["state"] == again[-1]["state"] == "success", (first, again)
    robot = sim_admin.robot_messages()
    assert len(robot) == 1
    assert "Deadline missed" in robot[0]["content"] and "scheduled__2026-11-30" in robot[0]["content"]


def test_the_digest_deadline_is_measured_from_the_cron_and_only_set_with_an_alert_target(monkeypatch):
    from wecom.notifications import deadline_alerts, deadline_interval

    assert deadline_interval("47 7 * * *", "08:30") == timedelta(minutes=43)
    assert deadline_interval("13 8 * * 1-5", "08:30") == timedelta(minutes=17)
    with pytest.raises(ValueError, match="not after"):
        deadline_interval("47 7 * * *", "07:00")
    monkeypatch.delenv("WECOM_ALERT_USERS", raising=False)
    monkeypatch.delenv("WECOM_ALERT_WEBHOOK_CONN_ID", raising=False)
    assert deadline_alerts("47 7 * * *", "08:30") == []
    monkeypatch.setenv("WECOM_ALERT_USERS", "oncall1|oncall2")
    monkeypatch.setenv("WECOM_ALERT_WEBHOOK_CONN_ID", "ops_robot")
    alerts = deadline_alerts("47 7 * * *", "08:30")
    assert [a.interval for a in alerts] == [timedelta(minutes=43)] * 2
    assert {a.callback.path for a in alerts} == {
        "wecom.notifications.WeComNotifier",
        "wecom.notifications.WeComWebhookNotifier",
    }
