"""Digests and reminders end to end: a synced directory, the platform's tables, the simulator, the ledger."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

import psycopg
import pytest
from conftest import ROOT, load_dag

from wecom import warehouse
from wecom.delivery import AppMessages, Sender
from wecom.directory import tasks as directory
from wecom.hooks import WeComHook
from wecom.interviews.answers import record_cards
from wecom.interviews.mapping import refresh_mapping
from wecom.interviews.render import LOCAL_TZ, md
from wecom.interviews.settings import DigestSettings, ReminderSettings
from wecom.interviews.tasks import plan_digest, plan_reminders
from wecom.outbox import Claimant, Outgoing
from wecom.payloads import markdown
from wecom_dev import demo_data
from wecom_dev.days import weekday_ahead
from wecom_dev.platform import create_platform_schema
from wecom_simulator import generate_org

DAY = weekday_ahead(1)  # a Tuesday ahead of the machine's clock: nothing expires


def digest_messages(source, wh, day, **options):
    """The day's digests as a run with these params plans them (read, composed, unmapped remembered)."""
    return plan_digest(source, wh, day, DigestSettings(**options))


def reminder_messages(source, wh, start, end, **options):
    """The window's reminders as a run with these params plans them."""
    return plan_reminders(source, wh, start, end, ReminderSettings(**options))


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=LOCAL_TZ)


@pytest.fixture
def world(connections, simulator):
    """The org synced into the warehouse and a hand-made interview platform in the same database."""
    directory.migrate()
    directory.apply(directory.fetch()["snapshot_id"])
    members = sorted(simulator.state.org.users.values(), key=lambda u: u["userid"].lower())
    a, b, c, d = members[:4]
    with psycopg.connect(connections["warehouse"], autocommit=True) as conn:
        create_platform_schema(conn)
        conn.execute(
            "INSERT INTO interview.users (id, name, email, mobile) VALUES"
            " (1, %s, upper(%s), NULL), (2, %s, NULL, %s), (3, '无人认领', 'nobody@elsewhere.example', NULL),"
            " (4, %s, 'old-address@example.com', NULL)",
            (a["name"], a["email"], b["name"], f"+86 {b['mobile']}", c["name"]),
        )
        conn.execute(
            "INSERT INTO wecom.user_mapping_overrides (platform_user_id, wecom_userid, note) VALUES (4, %s, 'test')",
            (c["userid"],),
        )
        interviews = [
            (1, "后端工程师", "午夜 候选人", at(DAY, 0, 15), at(DAY, 1, 0), "scheduled"),
            (2, "前端工程师", "昨晚", at(DAY - timedelta(days=1), 23, 50), at(DAY, 0, 40), "scheduled"),
            (3, "数据工程师", "深夜", at(DAY, 23, 30), at(DAY + timedelta(days=1), 0, 30), "scheduled"),
            (4, "产品经理", "已取消", at(DAY, 10), at(DAY, 11), "cancelled"),
            (5, "SRE", "**粗体** <b>x</b> [link](http://evil)", at(DAY, 14), at(DAY, 15), "scheduled"),
            (
                6,
                "测试开发",
                "欠反馈",
                at(DAY - timedelta(days=3), 10),
                at(DAY - timedelta(days=3), 11),
                "finished",
            ),
            (7, "算法工程师", "手动映射", at(DAY, 16), at(DAY, 17), "scheduled"),
        ]
        for iid, position, candidate, start, end, status in interviews:
            conn.execute(
                "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at, status, room_url)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (iid, position, candidate, start, end, status, f"https://www.showmebug.com/pads/{iid}"),
            )
        panel = [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (5, 2), (5, 3), (6, 1), (6, 2), (7, 4)]
        for iid, uid in panel:
            conn.execute(
                "INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (%s, %s)",
                (iid, uid),
            )
        conn.execute("INSERT INTO interview.feedbacks (interview_id, user_id) VALUES (6, 2)")
    return {
        "a": a["userid"].lower(),
        "b": b["userid"].lower(),
        "c": c["userid"].lower(),
        "d": d["userid"].lower(),
    }


@pytest.fixture
def conns(connections):
    with (
        psycopg.connect(connections["warehouse"], autocommit=True) as source,
        warehouse.connect_current() as wh,
    ):
        yield source, wh


def test_mapping_prefers_overrides_then_email_then_mobile_and_never_names(world, conns):
    source, wh = conns
    assert refresh_mapping(source, wh) == {"email": 1, "manual": 1, "mobile": 1, "unmatched": 1}
    rows = dict(wh.execute("SELECT platform_user_id, lower(wecom_userid) FROM wecom.user_mapping").fetchall())
    assert rows == {1: world["a"], 2: world["b"], 3: None, 4: world["c"]}
    assert wh.execute("SELECT platform_name FROM wecom.unmapped_interviewers").fetchall() == [("无人认领",)]


def test_digest_day_has_exact_recipients_and_local_times(world, conns, sim_admin):
    source, wh = conns
    refresh_mapping(source, wh)
    messages, report = digest_messages(source, wh, DAY, leader_summary=False)
    by_user = {m.recipient: m.payload["markdown"]["content"] for m in messages}
    assert set(by_user) == {world["a"], world["b"], world["c"]}
    a = by_user[world["a"]]
    assert "**00:15–01:00**（45 分钟）" in a and "**23:30–00:30**（60 分钟）" in a  # midnight, across days
    assert "昨晚" not in a and "已取消" not in a  # yesterday's and cancelled interviews are not today's
    assert "待提交的面试反馈（1）" in a and "欠反馈" in a
    assert "欠反馈" not in by_user[world["b"]]  # b submitted feedback for interview 6
    assert "＊＊粗体＊＊ ＜b＞x＜/b＞ ［link］（http://evil）" in by_user[world["b"]]  # hostile name escaped
    assert report["unmapped"] == ["无人认领 (platform user 3)"]
    summary = Sender(AppMessages(WeComHook()), wh).send(messages)
    assert summary.sent == 3
    again = Sender(AppMessages(WeComHook()), wh, Claimant("d", "another-run", "t")).send(
        digest_messages(source, wh, DAY, leader_summary=False)[0]
    )
    assert again.sent == 0 and again.already_done == 3
    assert sorted(m["userid"] for m in sim_admin.messages()) == sorted([world["a"], world["b"], world["c"]])


def test_english_digest_and_only_users(world, conns):
    source, wh = conns
    refresh_mapping(source, wh)
    messages, _ = digest_messages(
        source, wh, DAY, language="en", only_users={world["b"].upper()}, leader_summary=False
    )
    assert [m.recipient for m in messages] == [world["b"]]
    assert messages[0].payload["markdown"]["content"].startswith(f"## Your interviews on {DAY.isoformat()}")


def test_leader_summary_goes_to_each_interviewers_main_department_leaders(world, conns, simulator):
    source, wh = conns
    refresh_mapping(source, wh)
    messages, report = digest_messages(source, wh, DAY)
    org = simulator.state.org
    expected = set()
    for key in ("a", "b", "c"):
        dept = org.users[world[key]]["main_department"]
        expected |= {(dept, leader.lower()) for leader in org.departments[dept]["department_leader"]}
    leader_keys = {
        (int(m.dedup_key.split(":")[2]), m.recipient) for m in messages if m.dedup_key.startswith("leader")
    }
    assert leader_keys == expected and report["leader_summaries"] == len(expected)


def test_digest_dag_dry_run_records_and_sends_nothing_then_real_runs_send_once(
    airflow_db, world, connections, sim_admin
):
    dag = load_dag(ROOT / "dags", "interview_daily_digest")
    # Full conf every time: dag.test() keeps the previous run's conf in the DAG's params.
    conf = {"day": DAY.isoformat(), "leader_summary": False, "dry_run": False}
    from airflow.sdk.lineage import get_hook_lineage_collector

    get_hook_lineage_collector.cache_clear()  # one process ran the world's sync: start this run's lineage afresh
    dry = dag.test(run_conf={**conf, "dry_run": True})
    assert dry.get_state() == "success"
    assert sim_admin.messages() == []
    preview = dry.get_task_instance("send_digests").xcom_pull(task_ids="send_digests")
    # The preview is what each interviewer would read: recipient, key and the whole rendered text.
    assert sorted(p["to"] for p in preview["preview"]) == sorted(world[k].lower() for k in ("a", "b", "c"))
    assert all(p["key"] == f"digest:{DAY.isoformat()}:{p['to']}" for p in preview["preview"])
    assert all(p["text"].startswith("## ") and "\n" in p["text"] for p in preview["preview"])
    assert preview["preview_not_shown"] == 0
    lineage = _openlineage_complete("interview_daily_digest.send_digests")
    assert [d["name"].split(".", 1)[1] for d in lineage["inputs"]] == ["interview_contract.interviews"]
    assert [d["name"].split(".", 1)[1] for d in lineage["outputs"]] == ["wecom.message_log"]
    assert lineage["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3
    with psycopg.connect(connections["warehouse"]) as conn:
        rows = conn.execute("SELECT status, reason FROM wecom.message_log").fetchall()
    assert len(rows) == 3 and all(r == ("skipped", "dry run: rendered, not sent") for r in rows)
    first = dag.test(run_conf=conf)
    second = dag.test(run_conf=conf)  # re-triggered for the same day
    assert first.get_state() == second.get_state() == "success"
    result = second.get_task_instance("send_digests").xcom_pull(task_ids="send_digests")
    assert (
        result["sent"] == 0
        and result["already_done"] == 3
        and result["unmapped"] == ["无人认领 (platform user 3)"]
    )
    assert len(sim_admin.messages()) == 3


def _openlineage_complete(job: str) -> dict:
    """The last OpenLineage COMPLETE event of a task (the tests' file transport, see conftest); the
    listener may still be writing it when the run returns."""
    from conftest import OPENLINEAGE_EVENTS

    for _ in range(100):
        events = [json.loads(line) for line in OPENLINEAGE_EVENTS.read_text().splitlines()]
        found = [
            e for e in events if e.get("eventType") == "COMPLETE" and e.get("job", {}).get("name") == job
        ]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no OpenLineage COMPLETE event for {job}")


def _run_windows(source, wh, start, count, **options):
    sender = Sender(AppMessages(WeComHook()), wh)
    totals = {"sent": 0, "already_done": 0, "expired": 0}
    for n in range(count):
        window = (start + timedelta(minutes=10 * n), start + timedelta(minutes=10 * (n + 1)))
        due = reminder_messages(source, wh, *window, **options)
        record_cards(wh, due.cards)
        summary = sender.send(due.messages)
        for key in totals:
            totals[key] += getattr(summary, key)
    return totals


def test_a_whole_day_of_reminder_intervals_sends_each_due_reminder_once(world, conns, sim_admin):
    source, wh = conns
    refresh_mapping(source, wh)
    start = at(DAY - timedelta(days=1), 0, 0)
    # The day before (it holds the reminder for 00:15, due 23:45) and the day itself up to 13:40.
    _run_windows(source, wh, start, 144 + 82, feedback_after_hours=10_000)
    source.execute(
        "UPDATE interview.interviews SET start_at = %s, end_at = %s, updated_at = now() WHERE id = 5",
        (at(DAY, 16, 30), at(DAY, 17, 30)),
    )  # rescheduled after its first reminder went out
    _run_windows(source, wh, at(DAY, 13, 40), 144 - 82, feedback_after_hours=10_000)  # the rest of the day
    delivered = sim_admin.messages()
    reminders = [m for m in delivered if "面试提醒" in m["content"]]
    got = sorted((m["userid"], m["content"].split("开始")[0].split()[-1]) for m in reminders)
    a, b, c = world["a"], world["b"], world["c"]
    expected = sorted([
        (a, "23:50"), (a, "00:15"), (a, "23:30"), (a, "14:00"), (a, "16:30"),  # a: i2, i1, i3, i5 and i5 moved
        (b, "14:00"), (b, "16:30"),  # b: i5 then its new time
        (c, "16:00"),  # c (manual mapping): i7; nobody is reminded of the cancelled i4
    ])  # fmt: skip
    assert got == expected
    assert len(reminders) == len({(m["userid"], m["content"]) for m in reminders})  # none twice


def test_backfill_over_a_past_window_expires_started_ones_and_sends_the_rest_once(world, conns, sim_admin):
    source, wh = conns
    now = datetime.now(LOCAL_TZ).replace(second=0, microsecond=0)
    source.execute(
        "UPDATE interview.interviews SET start_at = %s, end_at = %s WHERE id = 1",
        (now - timedelta(minutes=15), now + timedelta(minutes=30)),
    )  # started during the outage
    source.execute(
        "UPDATE interview.interviews SET start_at = %s, end_at = %s WHERE id = 7",
        (now + timedelta(minutes=20), now + timedelta(minutes=80)),
    )  # still ahead
    refresh_mapping(source, wh)
    outage_start = now - timedelta(minutes=60)
    first = _run_windows(source, wh, outage_start, 6, feedback_after_hours=10_000)
    assert (first["sent"], first["expired"]) == (1, 1)
    assert [m["userid"] for m in sim_admin.messages()] == [world["c"]]
    expired = wh.execute(
        "SELECT recipient, reason FROM wecom.message_log WHERE status = 'expired'"
    ).fetchall()
    assert expired == [(world["a"], "too late: its moment has passed")]
    second = _run_windows(source, wh, outage_start, 6, feedback_after_hours=10_000)
    assert second == {"sent": 0, "already_done": 2, "expired": 0}
    stale = _run_windows(source, wh, outage_start, 6, feedback_after_hours=10_000, send_stale=True)
    assert stale["sent"] == 0  # the expired reminder stays expired: it was decided, not forgotten


def test_feedback_nudges_at_most_once_a_day(world, conns, sim_admin):
    source, wh = conns
    refresh_mapping(source, wh)
    morning = at(DAY - timedelta(days=2), 9)  # interview 6 ended a day earlier at 11:00, a has no feedback
    _run_windows(source, wh, morning, 6)
    nudges = [m for m in sim_admin.messages() if "请提交面试反馈" in m["content"]]
    assert [m["userid"] for m in nudges] == [world["a"]]
    _run_windows(source, wh, morning + timedelta(days=1), 3)
    nudges = [m for m in sim_admin.messages() if "请提交面试反馈" in m["content"]]
    assert [m["userid"] for m in nudges] == [world["a"], world["a"]]


def test_two_identical_interview_records_get_two_nudges_not_one_absorbed(world, conns, sim_admin):
    """WeCom's duplicate check drops a byte-identical message: each nudge names its interview."""
    source, wh = conns
    source.execute(
        "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at, status, room_url)"
        " SELECT 8, position, candidate_name, start_at, end_at, status, room_url FROM interview.interviews"
        " WHERE id = 6"
    )
    source.execute("INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (8, 1)")
    refresh_mapping(source, wh)
    _run_windows(source, wh, at(DAY - timedelta(days=2), 9), 6)
    nudges = [m["content"] for m in sim_admin.messages() if "请提交面试反馈" in m["content"]]
    assert len(nudges) == 2 and len(set(nudges)) == 2
    assert sim_admin.stats()["duplicates_absorbed"] == 0


def test_reminders_dag_runs_for_its_data_interval(airflow_db, world, connections, sim_admin):
    dag = load_dag(ROOT / "dags", "interview_reminders")
    # No digest has refreshed wecom.user_mapping: the reminder run maps its interviewers itself.
    # The interval [13:23, 13:33) holds the reminder for 14:00 (due 13:30) for a and b.
    run = dag.test(logical_date=at(DAY, 13, 33), run_conf={"feedback_after_hours": 10_000})
    assert run.get_state() == "success"
    result = run.get_task_instance("send_due_reminders").xcom_pull(task_ids="send_due_reminders")
    assert result["reminders_due"] == 3 and result["sent"] == 2 and result["unmapped"]
    assert sorted(m["userid"] for m in sim_admin.messages()) == sorted([world["a"], world["b"]])


def test_reminders_dry_run_previews_the_window_in_the_log_and_result_and_sends_nothing(
    airflow_db, world, connections, sim_admin, caplog
):
    from airflow.sdk.lineage import get_hook_lineage_collector

    dag = load_dag(ROOT / "dags", "interview_reminders")
    conf = {"feedback_after_hours": 10_000, "dry_run": True}
    get_hook_lineage_collector.cache_clear()
    run = dag.test(logical_date=at(DAY, 13, 33), run_conf=conf)
    assert run.get_state() == "success" and sim_admin.messages() == []
    result = run.get_task_instance("send_due_reminders").xcom_pull(task_ids="send_due_reminders")
    assert result["dry_run"] and result["rendered"] == 2 and result["sent"] == 0
    assert sorted(p["to"] for p in result["preview"]) == sorted([world["a"].lower(), world["b"].lower()])
    assert all("面试提醒" in p["text"] for p in result["preview"])
    assert caplog.text.count("Dry run: to ") == 2
    lineage = _openlineage_complete("interview_reminders.send_due_reminders")
    assert [d["name"].split(".", 1)[1] for d in lineage["outputs"]] == ["wecom.message_log"]
    again = dag.test(logical_date=at(DAY, 13, 33), run_conf={**conf, "dry_run": False})
    assert again.get_state() == "success"  # the real run after a preview still sends
    assert sorted(m["userid"] for m in sim_admin.messages()) == sorted([world["a"], world["b"]])


def test_a_preview_shows_the_first_messages_and_counts_the_rest():
    from wecom.interviews.tasks import preview

    messages = [Outgoing(f"k{n}", f"u{n}", markdown(f"**{n}**")) for n in range(45)]
    shown = preview(messages, limit=30)
    assert [p["to"] for p in shown["preview"]] == [f"u{n}" for n in range(30)]
    assert shown["preview"][3]["text"] == "**3**" and shown["preview_not_shown"] == 15


def test_unmapped_interviewers_are_warned_about_once_until_something_changes(world, conns, caplog):
    source, wh = conns
    refresh_mapping(source, wh)
    window = (at(DAY, 13, 23), at(DAY, 13, 33))
    warnings = []
    for _ in range(3):
        caplog.clear()
        report = reminder_messages(source, wh, *window, feedback_after_hours=10_000).report
        assert report["unmapped"] == ["无人认领 (platform user 3)"]
        warnings.append([r.getMessage() for r in caplog.records if r.levelname == "WARNING"])
    assert len(warnings[0]) == 1 and "无人认领" in warnings[0][0] and "new" in warnings[0][0]
    assert warnings[1] == warnings[2] == []  # the same list again is not news
    # Mapped by hand, then unmapped again: news again.
    wh.execute("INSERT INTO wecom.user_mapping_overrides (platform_user_id, wecom_userid) VALUES (3, %s)",
               (world["a"],))  # fmt: skip
    refresh_mapping(source, wh)
    reminder_messages(source, wh, *window, feedback_after_hours=10_000)
    wh.execute("DELETE FROM wecom.user_mapping_overrides")
    refresh_mapping(source, wh)
    caplog.clear()
    reminder_messages(source, wh, *window, feedback_after_hours=10_000)
    assert [r for r in caplog.records if r.levelname == "WARNING" and "无人认领" in r.getMessage()]


def test_markdown_escaping_neutralises_markup():
    assert md("**x** <script>[a](b)\n#h") == "＊＊x＊＊ ＜script＞［a］（b） ＃h"


def test_demo_data_is_deterministic_and_consistent_with_the_org():
    org = generate_org(users=400, departments=30, seed=5)
    first = demo_data.generate(org, first_day=date(2026, 11, 2), days=14, interviewers=100, per_day=40, seed=5,
                               now=at(date(2026, 11, 9), 12))  # fmt: skip
    again = demo_data.generate(org, first_day=date(2026, 11, 2), days=14, interviewers=100, per_day=40, seed=5,
                               now=at(date(2026, 11, 9), 12))  # fmt: skip
    assert first == again
    emails = {u["email"] for u in org.users.values()}
    matched = [u for u in first.users if u[2] in emails]
    assert 0.8 * len(first.users) < len(matched) < len(first.users)  # most match; some don't
    statuses = {i[5] for i in first.interviews}
    assert statuses == {"scheduled", "cancelled", "finished"}
    assert all(9 <= i[3].astimezone(LOCAL_TZ).hour < 20 for i in first.interviews)
    assert all(i[3].astimezone(LOCAL_TZ).weekday() < 5 for i in first.interviews if i[8] == i[7])
    panels = {}
    for iid, _ in first.interviewers:
        panels[iid] = panels.get(iid, 0) + 1
    assert max(panels.values()) == 3 and len(first.feedback) < sum(
        panels[i[0]] for i in first.interviews if i[5] == "finished"
    )
