"""``make e2e``: the pipeline under a real scheduler, two Celery workers and a backfill after an outage.

Starts the deployment of ``wecom_dev.deployment`` (PostgreSQL metadata DB, api-server, scheduler,
dag-processor, triggerer, two Celery workers on Redis, the simulator, a warehouse), then acts only through
the ``airflow`` CLI and the REST API, as an operator would, and checks the outcome in the warehouse and in
the simulator's record. Exits non-zero on the first broken expectation; stops every process it started.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import requests

from wecom.callbacks.crypto import CallbackCrypto, signature
from wecom.interviews.render import LOCAL_TZ
from wecom.interviews.schedule import REMINDER_INTERVAL
from wecom_dev import demo_data
from wecom_dev.deployment import BRIDGE_LOGIN, CALLBACK_SECRETS, Deployment, deployment
from wecom_dev.environment import org_args
from wecom_dev.leaks import files, find_leaks, postgres_rows
from wecom_dev.platform import create_platform_schema
from wecom_dev.processes import leftover_processes
from wecom_simulator import SimulatorAdmin, SimulatorConfig, generate_org

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".e2e"
ORG = {"users": 300, "departments": 30, "seed": 1}
LEAD = timedelta(minutes=30)


BEGAN = time.monotonic()


def step(title: str) -> None:
    print(f"[{time.monotonic() - BEGAN:6.1f} s] {title}", flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"E2E FAILED: {what}")
    print(f"  ok: {what}", flush=True)


def dag_runs(d: Deployment, dag_id: str) -> list[dict]:
    return d.api("GET", f"dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "id"})["dag_runs"]


def wait_runs(d: Deployment, dag_id: str, count: int, timeout: float = 600) -> list[dict]:
    """Wait until ``count`` runs of the DAG exist and all have finished; the runs."""

    def finished() -> bool:
        runs = dag_runs(d, dag_id)
        return len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs)

    d.wait(finished, timeout, f"{count} finished runs of {dag_id}")
    return dag_runs(d, dag_id)


def wait_backfill(d: Deployment, dag_id: str, started: float, timeout: float = 600) -> None:
    def done() -> bool:
        backfills = d.api("GET", "backfills", params={"dag_id": dag_id, "limit": 100})["backfills"]
        return bool(backfills) and all(b["completed_at"] for b in backfills)

    d.wait(done, timeout, f"the backfill of {dag_id} to complete")
    print(f"  backfill of {dag_id} completed in {time.monotonic() - started:.1f} s", flush=True)


def ledger(d: Deployment, prefix: str) -> dict[tuple[str, str], str]:
    with psycopg.connect(d.warehouse_url) as conn:
        rows = conn.execute("SELECT dedup_key, recipient, status FROM wecom.message_log WHERE dedup_key LIKE %s",
                            (prefix + "%",)).fetchall()  # fmt: skip
    return {(key, recipient): status for key, recipient, status in rows}


def seed(d: Deployment, digest_day: date, interval_end: datetime) -> dict[int, str]:
    """Demo interviews for the digest day, plus six interviews whose reminders fall due in the hour before
    ``interval_end``: three already started (to be expired), three still ahead (to be sent)."""
    org = generate_org(**ORG)
    data = demo_data.generate(
        org, first_day=digest_day, days=1, interviewers=80, per_day=40, seed=ORG["seed"]
    )
    mapped = [u for u in data.users if u[2] and not u[2].endswith("personal.example.net")]
    expected: dict[int, str] = {}
    offsets = {-25: "expired", -15: "expired", -5: "expired", 20: "sent", 25: "sent", 29: "sent"}
    for n, (minutes, outcome) in enumerate(offsets.items()):
        interview_id = 100_000 + n
        start = interval_end + timedelta(minutes=minutes)
        data.interviews.append((interview_id, "SRE", "候选人", start, start + timedelta(hours=1), "scheduled",
                                None, start - timedelta(days=2), start - timedelta(days=2)))  # fmt: skip
        data.interviewers.append((interview_id, mapped[n][0]))
        expected[interview_id] = outcome
    with psycopg.connect(d.warehouse_url, autocommit=True) as conn:
        create_platform_schema(conn)
        demo_data.load(conn, data)
    return expected


def next_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def last_interval_end(now: datetime) -> datetime:
    """End of the last complete reminder interval (the schedule is :03, :13, ...)."""
    end = now.replace(second=0, microsecond=0)
    return end - timedelta(minutes=(end.minute - 3) % 10)


QUIET = 300  # seconds the inbox DAGs are watched with nothing in the inbox: no run may start


def watch_the_inbox(d: Deployment) -> float:
    """Unpause the two DAGs the inbox wakes, before anything else, and wait for their triggers to run in
    the triggerer; from then on, until callbacks are turned on, a run of either would be an empty run."""
    d.airflow("dags", "unpause", "wecom_directory_events")
    d.airflow("dags", "unpause", "interview_answers")

    def watching() -> bool:
        with psycopg.connect(d.metadata_url) as conn:
            return conn.execute("SELECT count(*) FROM trigger WHERE classpath = 'wecom.triggers.InboxTrigger'"
                                " AND triggerer_id IS NOT NULL").fetchone()[0] >= 2  # fmt: skip

    d.wait(watching, 120, "the triggerer to run the two inbox triggers")
    return time.monotonic()


def inbox_runs(d: Deployment) -> dict[str, list[dict]]:
    return {dag_id: dag_runs(d, dag_id) for dag_id in ("wecom_directory_events", "interview_answers")}


def scenario(d: Deployment, sim: SimulatorAdmin, figures: dict) -> date:
    """Steps 1-6; the day whose interviews it seeded."""
    step("1. Directory sync: unpause, trigger, wait, compare with WeCom")
    d.airflow("dags", "unpause", "wecom_directory_sync")
    d.airflow("dags", "trigger", "wecom_directory_sync")
    runs = wait_runs(d, "wecom_directory_sync", 2)  # unpausing also scheduled the latest daily run
    check(
        [r["state"] for r in runs] == ["success"] * 2, "the scheduled and the manual directory sync succeeded"
    )
    org = sim.org()
    with psycopg.connect(d.warehouse_url) as conn:
        users = {u for (u,) in conn.execute("SELECT userid FROM wecom.users WHERE deleted_at IS NULL")}
        departments = conn.execute(
            "SELECT count(*) FROM wecom.departments WHERE deleted_at IS NULL"
        ).fetchone()[0]
        memberships = conn.execute("SELECT count(*) FROM wecom.user_departments").fetchone()[0]
    check(
        users == {u["userid"] for u in org["users"]}, f"wecom.users holds the {len(users)} members of WeCom"
    )
    check(departments == len(org["departments"]), f"wecom.departments holds the {departments} departments")
    check(memberships == sum(len(u["department"]) for u in org["users"]), f"{memberships} memberships")
    events = d.api("GET", "assets/events", params={"limit": 100})["asset_events"]
    check(
        sorted(e["name"] for e in events) == ["wecom.departments", "wecom.user_departments", "wecom.users"]
        and all(e["extra"]["users_added"] == len(users) for e in events),
        "one asset event per directory table, with the counts, for the sync that changed it (none for the other)",
    )

    # The unpause must create exactly one run, for the interval the seed is for: seed and unpause well
    # inside one interval, after the dag-processor has re-parsed since its start (it plans the next run).
    now = datetime.now(LOCAL_TZ)
    since = (now - last_interval_end(now)).total_seconds()
    if not 45 <= since <= REMINDER_INTERVAL.total_seconds() - 90:
        time.sleep((45 - since) % REMINDER_INTERVAL.total_seconds())
    digest_day = next_weekday(datetime.now(LOCAL_TZ).date() + timedelta(days=1))
    end = last_interval_end(datetime.now(LOCAL_TZ))
    start = end - 6 * REMINDER_INTERVAL
    expected = seed(d, digest_day, end)
    step(
        f"2. Outage: WeCom answers 502 while the reminders DAG is unpaused (window {start:%H:%M}-{end:%H:%M})"
    )
    sim.fault("http502", count=-1)
    d.airflow("dags", "unpause", "interview_reminders")
    runs = wait_runs(d, "interview_reminders", 1)
    check(
        runs[0]["state"] == "failed", "the scheduled reminder run failed while WeCom was down (after retries)"
    )
    check(sim.stats()["delivered"] == 0, "nothing was delivered during the outage")
    sim.clear_faults()

    step("3. Backfill the window after the outage (as the runbook says)")
    delivered_before = sim.stats()["delivered"]
    started = time.monotonic()
    # Runs of this timetable are keyed by the start of their interval.
    window = ["--from-date", start.isoformat(), "--to-date", (end - REMINDER_INTERVAL).isoformat()]
    d.airflow(
        "backfill", "create", "--dag-id", "interview_reminders", *window, "--reprocess-behavior", "failed"
    )
    wait_backfill(d, "interview_reminders", started)
    figures["backfill_s"] = round(time.monotonic() - started, 1)
    backfill_runs = [r for r in dag_runs(d, "interview_reminders") if r["run_type"] == "backfill"]
    check(len(backfill_runs) == 6 and all(r["state"] == "success" for r in backfill_runs),
          f"the backfill ran the {len(backfill_runs)} intervals of the window, all successful")  # fmt: skip
    reminders = ledger(d, "reminder:")
    outcome = {int(key.split(":")[1]): status for (key, _), status in reminders.items()}
    check(
        outcome == expected,
        f"every due reminder is sent or expired as the runbook says: {dict(Counter(outcome.values()))}",
    )
    with psycopg.connect(d.warehouse_url) as conn:
        markdown = conn.execute("SELECT count(*) FROM wecom.message_log WHERE dedup_key LIKE 'reminder:%%'"
                                " AND status = 'sent' AND errcode = 43012 AND reason LIKE 'sent as markdown%%'").fetchone()[0]  # fmt: skip
    check(markdown == list(expected.values()).count("sent"),
          "the app has no callback URL yet: each reminder went out as markdown, the ledger says why (43012)")  # fmt: skip
    sent = Counter(m["userid"] for m in sim.messages()[delivered_before:])
    check(
        sum(sent.values()) == list(expected.values()).count("sent"),
        "WeCom delivered exactly the reminders sent",
    )

    step("4. The same backfill again sends nothing")
    delivered = sim.stats()["delivered"]
    started, again = time.monotonic(), datetime.now(LOCAL_TZ)
    d.airflow(
        "backfill", "create", "--dag-id", "interview_reminders", *window, "--reprocess-behavior", "completed"
    )
    wait_backfill(d, "interview_reminders", started)
    rerun = [r for r in dag_runs(d, "interview_reminders") if r["run_type"] == "backfill"
             and r["state"] == "success" and datetime.fromisoformat(r["end_date"]) > again]  # fmt: skip
    check(len(rerun) == 6, "the 6 runs of the window ran again, all successful")
    check(
        sim.stats()["delivered"] == delivered and ledger(d, "reminder:") == reminders,
        "nothing new sent or recorded",
    )

    step(f"5. The digest for {digest_day} triggered twice")
    d.airflow("dags", "unpause", "interview_daily_digest")
    before = len(sim.messages())
    conf = json.dumps({"day": digest_day.isoformat()})
    for _ in range(2):
        d.airflow("dags", "trigger", "interview_daily_digest", "--conf", conf)
    runs = wait_runs(d, "interview_daily_digest", 3)  # unpausing also scheduled the run for today
    check(
        [r["state"] for r in runs if r["run_type"] == "manual"] == ["success"] * 2,
        "both digest runs succeeded",
    )
    digests = ledger(d, f"digest:{digest_day}:")
    check(
        len(digests) > 10 and set(digests.values()) == {"sent"}, f"{len(digests)} interviewers' digests sent"
    )
    per_member = Counter((m["userid"], m["content"]) for m in sim.messages())
    check(max(per_member.values()) == 1, "no member received the same message twice")
    recipients = {m["userid"] for m in sim.messages()[before:]}
    check({r.lower() for _, r in digests} <= recipients, "WeCom delivered every digest")

    late_digest(d, sim, next_weekday(digest_day + timedelta(days=1)))

    stats = sim.stats()
    check(
        stats["calls"].get("gettoken", 0) == 1,
        "one gettoken call for the whole run: the token cache is shared",
    )
    check(stats["silent_drops"] == 0, "WeCom dropped nothing silently")
    per_worker = {name: (d.logs / f"{name}.log").read_text().count("] received")
                  for name in d.processes if name.startswith("worker")}  # fmt: skip
    check(min(per_worker.values()) > 0, f"both Celery workers ran tasks: {per_worker}")
    pids = task_pids(d)
    check(len(pids) >= 2, f"tasks ran in {len(pids)} separate processes")
    figures |= {"delivered": stats["delivered"], "gettoken": stats["calls"].get("gettoken", 0),
                "tasks_per_worker": per_worker, "task_processes": len(pids)}  # fmt: skip
    return digest_day


def late_digest(d: Deployment, sim: SimulatorAdmin, day: date) -> None:
    step(f"6. A late digest ({day}): WeCom's message/send down past the deadline")
    sim.fault("http502", path="message/send", count=-1)
    before = {r["dag_run_id"] for r in dag_runs(d, "interview_daily_digest")}
    # A logical date, as a scheduled run has: the deadline is measured from it (a minute, in this deployment).
    now = datetime.now(LOCAL_TZ).replace(microsecond=0).isoformat()
    conf = json.dumps({"day": day.isoformat()})
    d.airflow("dags", "trigger", "interview_daily_digest", "--logical-date", now, "--conf", conf)
    runs = wait_runs(d, "interview_daily_digest", len(before) + 1)
    late = [r for r in runs if r["dag_run_id"] not in before][0]
    check(late["state"] == "failed", "the digest run failed while message/send was down")

    def alerts() -> list[dict]:
        return [m for m in sim.robot_messages()
                if "Deadline missed" in m["content"] and late["dag_run_id"] in m["content"]]  # fmt: skip

    d.wait(lambda: bool(alerts()), 240, "the deadline alert of the late digest")
    time.sleep(15)  # a second alert would come from the scheduler's next loops
    check(len(alerts()) == 1, "one deadline alert reached the ops group's robot, from the triggerer")
    sim.clear_faults()


def task_pids(d: Deployment) -> set[int]:
    with psycopg.connect(d.metadata_url) as conn:
        return {
            pid for (pid,) in conn.execute("SELECT DISTINCT pid FROM task_instance WHERE pid IS NOT NULL")
        }


def callbacks(d: Deployment, sim: SimulatorAdmin, figures: dict) -> None:
    step("7. Callbacks: WeCom verifies /wecom/callback on the api-server; org changes reach the directory")
    token, aes_key = CALLBACK_SECRETS["callback_token"], CALLBACK_SECRETS["callback_aes_key"]
    crypto = CallbackCrypto.from_settings(token, aes_key, SimulatorConfig().corp_id)
    echostr, timestamp, nonce = crypto.encrypt(b"4242424242"), str(int(time.time())), "e2e"
    query = {"msg_signature": signature(token, timestamp, nonce, echostr), "timestamp": timestamp, "nonce": nonce,
             "echostr": echostr}  # fmt: skip
    started = time.monotonic()
    answer = requests.get(f"{d.api_url}/wecom/callback", params=query, timeout=30)
    verify_s = round(time.monotonic() - started, 3)
    check(answer.status_code == 200 and answer.content == b"4242424242",
          f"the api-server's mount answered WeCom's URL verification with the bare echo ({verify_s} s, cold)")  # fmt: skip
    quiet_s = time.monotonic() - figures.pop("watching_since")
    if quiet_s < QUIET:
        print(f"  (the inbox DAGs have been watched for {quiet_s:.0f} s: waiting for {QUIET} s)", flush=True)
        time.sleep(QUIET - quiet_s)
        quiet_s = QUIET
    quiet = inbox_runs(d)
    figures["quiet_minutes_runs"] = {"minutes": round(quiet_s / 60, 1)} | {
        k: len(v) for k, v in quiet.items()
    }
    check(not any(quiet.values()),
          f"no run of either inbox DAG in {quiet_s / 60:.1f} quiet minutes (an empty inbox makes none)")  # fmt: skip
    sim.send_callbacks(f"{d.api_url}/wecom/callback", token, aes_key, duplicate=0.3, reorder=True)
    org = sim.org()
    users = sorted(org["users"], key=lambda u: u["userid"])
    hire = {**users[0], "userid": "e2ehire01", "name": "入职"}
    led = next(x for x in org["departments"] if x["department_leader"] and x["id"] != 1)
    successor = next(u["userid"] for u in users[5:] if led["id"] in u["department"]
                     and u["userid"] not in led["department_leader"])  # fmt: skip
    started = time.monotonic()
    sim.mutate(
        {"op": "set_leader", "department_id": led["id"], "userids": [successor]},
        {"op": "add_user", "user": hire},
        {"op": "update_user", "userid": users[1]["userid"], "fields": {"name": "改名"}},
        {"op": "move_user", "userid": users[2]["userid"], "departments": [1]},
        {"op": "remove_user", "userid": users[3]["userid"]},
        {"op": "add_department", "department": {"id": 9901, "name": "新部门", "parentid": 1}},
        {"op": "change_userid", "userid": users[4]["userid"], "new_userid": "e2erenamed01"},
    )

    def directory_equals_wecom() -> bool:
        org = sim.org()
        with psycopg.connect(d.warehouse_url) as conn:
            active = {u for (u,) in conn.execute("SELECT userid FROM wecom.users WHERE deleted_at IS NULL")}
            departments = {
                i
                for (i,) in conn.execute(
                    "SELECT department_id FROM wecom.departments WHERE deleted_at IS NULL"
                )
            }
            memberships = set(
                conn.execute("SELECT userid, department_id FROM wecom.user_departments").fetchall()
            )
            names = dict(
                conn.execute("SELECT userid, name FROM wecom.users WHERE deleted_at IS NULL").fetchall()
            )
            leaders = dict(conn.execute("SELECT department_id, leaders FROM wecom.departments").fetchall())
        return (active == {u["userid"] for u in org["users"]} and departments == {x["id"] for x in org["departments"]}
                and all(leaders[x["id"]] == x["department_leader"] for x in org["departments"])
                and memberships == {(u["userid"], x) for u in org["users"] for x in u["department"]}
                and all(names[u["userid"]] == u["name"] for u in org["users"]))  # fmt: skip

    d.wait(directory_equals_wecom, 150, "the directory to follow WeCom through callbacks")
    fresh_s = round(time.monotonic() - started, 1)
    figures["callback_to_directory_s"] = fresh_s
    woken = dag_runs(d, "wecom_directory_events")
    check(bool(woken) and all(r["run_type"] == "asset_triggered" for r in woken) and fresh_s < 45,
          f"leader change, hire, rename, move, departure, new department and userid change in the directory "
          f"{fresh_s} s after the changes, by {len(woken)} events run(s) the receiver's NOTIFY started "
          "(PostgreSQL → the triggerer's inbox trigger → the scheduler), no full sync")  # fmt: skip
    lost_notice(d, figures)
    with psycopg.connect(d.warehouse_url) as conn:
        runs = conn.execute("SELECT count(*) FROM wecom.sync_runs WHERE kind = 'incremental'").fetchone()[0]
        waiting = conn.execute(
            "SELECT count(*) FROM wecom.callback_events WHERE processed_at IS NULL"
        ).fetchone()[0]
    check(runs >= 1 and waiting == 0, f"{runs} incremental sync run(s), no event left waiting")
    check(sim.callbacks()["failed"] == 0, "every callback was acknowledged")


def lost_notice(d: Deployment, figures: dict) -> None:
    """An event stored while its NOTIFY was lost (written here without one): the inbox trigger's own look
    at the inbox finds it, and an events run applies it."""
    with psycopg.connect(d.warehouse_url, autocommit=True) as conn:
        userid = conn.execute("SELECT userid FROM wecom.users WHERE deleted_at IS NULL LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO wecom.callback_events (payload_sha256, event, change_type, userid, payload)"
                     " VALUES ('e2e-lost-notice', 'change_contact', 'update_user', %s, '{}')", (userid,))  # fmt: skip
    started = time.monotonic()

    def applied() -> bool:
        with psycopg.connect(d.warehouse_url) as conn:
            return conn.execute("SELECT processed_at IS NOT NULL FROM wecom.callback_events"
                                " WHERE payload_sha256 = 'e2e-lost-notice'").fetchone()[0]  # fmt: skip

    d.wait(applied, 90, "an event whose notice was lost to be applied")
    figures["lost_notice_applied_s"] = round(time.monotonic() - started, 1)
    check(figures["lost_notice_applied_s"] <= 60,
          f"an event whose NOTIFY was lost applied {figures['lost_notice_applied_s']} s after it was stored")  # fmt: skip


def due_now() -> datetime:
    """A start whose reminder is due in the last complete reminder interval, which a manual run covers (with
    or without a logical date: the schedule's :03 interval, or the last whole ten minutes)."""
    now = datetime.now(LOCAL_TZ)
    if now.minute % 10 in (2, 9) and now.second > 40:
        time.sleep(70 - now.second)  # not at a boundary of either
        now = datetime.now(LOCAL_TZ)
    ends = (
        last_interval_end(now),
        now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 10),
    )
    low = max(ends) - REMINDER_INTERVAL
    return low + (min(ends) - low) / 2 + LEAD


def answers(d: Deployment, sim: SimulatorAdmin, figures: dict) -> None:
    step("8. Answerable reminders: a reminder card, the interviewer taps 无法参加, the recruiter is told")
    with psycopg.connect(d.warehouse_url, autocommit=True) as conn:
        interviewer, recruiter = (r[0] for r in conn.execute(
            "SELECT platform_user_id FROM wecom.user_mapping WHERE wecom_userid IS NOT NULL"
            " ORDER BY platform_user_id LIMIT 2"))  # fmt: skip
        start = due_now()
        conn.execute(
            "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at, status, room_url,"
            " recruiter_id) VALUES (200000, '数据工程师', '卡片候选人', %s, %s, 'scheduled',"
            " 'https://www.showmebug.com/pads/e2e', %s)",
            (start, start + timedelta(hours=1), recruiter),
        )
        conn.execute("INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (200000, %s)",
                     (interviewer,))  # fmt: skip
    d.airflow("dags", "trigger", "interview_reminders")

    def card() -> tuple | None:
        with psycopg.connect(d.warehouse_url) as conn:
            return conn.execute(
                "SELECT c.task_id, c.userid, c.recruiter_userid FROM wecom.reminder_cards c JOIN wecom.message_log l"
                " ON l.dedup_key = c.dedup_key WHERE c.interview_id = 200000 AND l.status = 'sent'"
            ).fetchone()  # fmt: skip

    d.wait(lambda: card() is not None, 120, "the reminder card to be sent")
    task_id, userid, recruiter_userid = card()
    [shown] = [c["shown"] for c in sim.cards() if c["task_id"] == task_id]
    check(shown == {userid: None} and recruiter_userid is not None,
          "WeCom shows the interviewer an answerable card (buttons 确认参加 / 无法参加)")  # fmt: skip
    started = time.monotonic()
    check(sim.click(userid, task_id, "decline").get("ok") is True, "the interviewer tapped 无法参加")

    def answered() -> bool:
        with psycopg.connect(d.warehouse_url) as conn:
            rows = conn.execute("SELECT choice FROM wecom.reminder_responses WHERE task_id = %s", (task_id,))
            recorded = rows.fetchall() == [("declined",)]
        [now] = [c["shown"] for c in sim.cards() if c["task_id"] == task_id]
        return recorded and now == {userid: "已告知无法参加"}

    d.wait(answered, 60, "the answer recorded and the card updated")
    answer_s = round(time.monotonic() - started, 1)
    figures["tap_to_card_updated_s"] = answer_s
    check(
        answer_s < 30,
        f"the answer is in wecom.reminder_responses and the card shows it {answer_s} s after the tap",
    )
    d.wait(
        lambda: any("卡片候选人" in m["content"] for m in sim.messages(recruiter_userid)),
        60,
        "the decline message",
    )
    time.sleep(5)  # a second message would come with the next run
    told = [m for m in sim.messages(recruiter_userid) if "卡片候选人" in m["content"]]
    check(len(told) == 1, "the recruiter got the decline once")
    check(sim.click(userid, task_id, "confirm")["errcode"] == 42018, "the card has no buttons left to tap")


def changes(d: Deployment, sim: SimulatorAdmin, figures: dict) -> None:
    step("9. The platform cancels one interview and moves another after their cards: WeCom follows")
    with psycopg.connect(d.warehouse_url, autocommit=True) as conn:
        [(interviewer,)] = conn.execute("SELECT platform_user_id FROM wecom.user_mapping WHERE wecom_userid"
                                        " IS NOT NULL ORDER BY platform_user_id LIMIT 1")  # fmt: skip
        start = due_now()
        for iid, candidate in ((200001, "取消候选人"), (200002, "改期候选人")):
            conn.execute(
                "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at, status,"
                " room_url) VALUES (%s, '数据工程师', %s, %s, %s, 'scheduled', %s)",
                (iid, candidate, start, start + timedelta(hours=1), f"https://www.showmebug.com/pads/{iid}"),
            )
            conn.execute("INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (%s, %s)",
                         (iid, interviewer))  # fmt: skip
    d.airflow("dags", "trigger", "interview_reminders")

    def state() -> tuple[dict[int, str], dict[int, str]]:
        with psycopg.connect(d.warehouse_url) as conn:
            cards = dict(
                conn.execute(
                    "SELECT c.interview_id, c.task_id FROM wecom.reminder_cards c JOIN wecom.message_log l ON"
                    " l.dedup_key = c.dedup_key WHERE c.interview_id IN (200001, 200002) AND l.status = 'sent'"
                )
            )
            calendar = dict(conn.execute("SELECT interview_id, state || ':' || version FROM wecom.calendar_entries"
                                         " WHERE interview_id IN (200001, 200002)"))  # fmt: skip
        return cards, calendar

    d.wait(lambda: len(state()[0]) == 2 and state()[1] == {200001: "synced:1", 200002: "synced:1"}, 180,
           "both reminder cards sent and both interviews in the WeCom calendar")  # fmt: skip
    cards, _ = state()
    userid = next(list(c["shown"]) for c in sim.cards() if c["task_id"] == cards[200001])[0]
    check(len([s for s in sim.calendar(userid) if "候选人" in s["summary"]]) >= 2,
          f"{userid} sees both interviews in their WeCom calendar")  # fmt: skip

    changed = time.monotonic()
    moved_to = start + timedelta(days=1, hours=2)
    with psycopg.connect(d.warehouse_url, autocommit=True) as conn:
        conn.execute("UPDATE interview.interviews SET status = 'cancelled' WHERE id = 200001")
        conn.execute("UPDATE interview.interviews SET start_at = %s, end_at = %s WHERE id = 200002",
                     (moved_to, moved_to + timedelta(hours=1)))  # fmt: skip
    d.airflow("dags", "trigger", "interview_reminders")

    def followed() -> bool:
        shown = {c["task_id"]: c["shown"].get(userid) for c in sim.cards()}
        told = [
            m["content"]
            for m in sim.messages(userid)
            if "面试已取消" in m["content"] or "面试已改期" in m["content"]
        ]
        schedules = {s["summary"]: s for s in sim.calendar(userid)}
        moved = [s for name, s in schedules.items() if "改期候选人" in name]
        return (shown.get(cards[200001]) == "已取消" and (shown.get(cards[200002]) or "").startswith("已改期至")
                and len(told) == 2 and not any("取消候选人" in name for name in schedules)
                and len(moved) == 1 and moved[0]["start_time"] == int(moved_to.timestamp()))  # fmt: skip

    d.wait(
        followed, REMINDER_INTERVAL.total_seconds(), "cards corrected, notices sent and the calendar updated"
    )
    figures["change_to_wecom_s"] = round(time.monotonic() - changed, 1)
    check(figures["change_to_wecom_s"] < REMINDER_INTERVAL.total_seconds(),
          f"cards corrected, 2 notices sent, the calendar updated {figures['change_to_wecom_s']} s after the"
          " platform changed (within one reminder interval)")  # fmt: skip

    step("10. Moved again during an outage of the scheduler's runs: a backfill sends the notice once")
    with psycopg.connect(d.warehouse_url, autocommit=True) as conn:
        conn.execute("UPDATE interview.interviews SET start_at = start_at + interval '1 hour',"
                     " end_at = end_at + interval '1 hour' WHERE id = 200002")  # fmt: skip
    end = last_interval_end(datetime.now(LOCAL_TZ))
    window = [
        "--from-date",
        (end - 3 * REMINDER_INTERVAL).isoformat(),
        "--to-date",
        (end - REMINDER_INTERVAL).isoformat(),
    ]
    started = time.monotonic()
    d.airflow(
        "backfill", "create", "--dag-id", "interview_reminders", *window, "--reprocess-behavior", "completed"
    )
    wait_backfill(d, "interview_reminders", started)
    with psycopg.connect(d.warehouse_url) as conn:
        notices = conn.execute("SELECT version, count(*) FROM wecom.interview_changes WHERE interview_id = 200002"
                               " AND notice = 'sent' GROUP BY 1 ORDER BY 1").fetchall()  # fmt: skip
    told = [m for m in sim.messages(userid) if "改期候选人" in m["content"] and "面试已改期" in m["content"]]
    check(notices == [(2, 1), (3, 1)] and len(told) == 2,
          f"3 backfill runs over the change: each move told once ({notices}, {len(told)} notices in WeCom)")  # fmt: skip
    live = [s for s in sim.schedules() if s["status"] == 0 and "改期候选人" in s["summary"]]
    check(len(live) == 1 and live[0]["start_time"] == int((moved_to + timedelta(hours=1)).timestamp()),
          "one calendar entry, at the latest time")  # fmt: skip


DIGEST_DAG = "interview_daily_digest"


def task_state(d: Deployment, run_id: str, task_id: str) -> str | None:
    return d.api("GET", f"dags/{DIGEST_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}")[
        "state"
    ]


def run_state(d: Deployment, run_id: str) -> str:
    return d.api("GET", f"dags/{DIGEST_DAG}/dagRuns/{quote(run_id, safe='')}")["state"]


def until(d: Deployment, condition: Any, timeout: float, what: str) -> float:
    """Like ``Deployment.wait``, polling every half second (for timings); the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        d.check_alive()
        if condition():
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}; see the logs in {d.logs} and {d.home / 'logs'}")


def question(d: Deployment, run_id: str) -> dict:
    """The digest approval's question of ``run_id`` as the warehouse records it, with its one card."""
    with psycopg.connect(d.warehouse_url) as conn:
        row = conn.execute(
            "SELECT q.question_id, q.decided_via, q.chosen, q.decided_by, c.task_id, c.userid, c.card_status"
            " FROM wecom.questions q JOIN wecom.question_cards c USING (question_id)"
            " WHERE q.dag_id = %s AND q.run_id = %s AND q.task_id = 'approve_digests'",
            (DIGEST_DAG, run_id),
        ).fetchall()
    names = ("question_id", "decided_via", "chosen", "decided_by", "task_id", "userid", "card_status")
    return dict(zip(names, row[0], strict=True)) if len(row) == 1 else {"cards": len(row)}


def ask_for_approval(d: Deployment, sim: SimulatorAdmin, approver: str, day: date) -> tuple[str, dict, float]:
    """Trigger the digest for ``day`` with approval required; wait for the question and its card in WeCom.
    (run_id, the question, when the task was seen waiting)."""
    conf = {"day": day.isoformat(), "require_approval": True, "approvers": [approver]}
    run_id = d.api("POST", f"dags/{DIGEST_DAG}/dagRuns", json={"logical_date": None, "conf": conf})[
        "dag_run_id"
    ]
    d.wait(lambda: task_state(d, run_id, "approve_digests") == "awaiting_input", 300,
           f"approve_digests of {run_id} to wait for an answer")  # fmt: skip
    waiting = time.monotonic()
    d.wait(lambda: "task_id" in question(d, run_id), 60, "the question recorded with one card")
    asked = question(d, run_id)
    key = f"hitl:{asked['question_id']}"
    d.wait(lambda: ledger(d, key) == {(key, approver): "sent"}, 60, "the question card sent")
    [card] = [c for c in sim.cards() if c["task_id"] == asked["task_id"]]
    check(asked["task_id"].startswith("hitl_") and card["keys"] == ["hitl:0", "hitl:1"]
          and card["shown"] == {approver: None} and asked["decided_via"] is None,
          f"the approver got a card in WeCom ({card['title']!r}) with Approve / Reject (hitl:0 / hitl:1)")  # fmt: skip
    return run_id, asked, waiting


def shows(sim: SimulatorAdmin, task_id: str, userid: str) -> str | None:
    [card] = [c for c in sim.cards() if c["task_id"] == task_id]
    return card["shown"].get(userid)


def ask_in_wecom(d: Deployment, sim: SimulatorAdmin, figures: dict, after: date) -> None:
    step(
        "11. Ask a person in WeCom: the digest waits for approval; a tap approves, a tap rejects, the UI answers"
    )
    d.airflow("dags", "unpause", "wecom_questions")
    with psycopg.connect(d.warehouse_url) as conn:
        [(approver,)] = conn.execute("SELECT lower(userid) FROM wecom.users WHERE deleted_at IS NULL"
                                     " ORDER BY userid LIMIT 1").fetchall()  # fmt: skip
    # Days no earlier step sent digests for: the feedback still owed for the seeded day makes digests.
    approve_day, reject_day, ui_day = (after + timedelta(days=n) for n in (1, 2, 3))

    run_id, asked, _ = ask_for_approval(d, sim, approver, approve_day)
    time.sleep(5)  # the approver reads the card
    before = len(sim.messages())
    tapped = time.monotonic()
    check(sim.click(approver, asked["task_id"], "hitl:0").get("ok") is True, f"{approver} tapped Approve")
    d.wait(lambda: task_state(d, run_id, "approve_digests") != "awaiting_input", 60,
           "approve_digests to leave awaiting_input")  # fmt: skip
    until(d, lambda: task_state(d, run_id, "approve_digests") in ("success", "failed"), 60,
          "approve_digests to end")  # fmt: skip
    figures["hitl_tap_to_resumed_s"] = round(time.monotonic() - tapped, 1)
    check(task_state(d, run_id, "approve_digests") == "success" and figures["hitl_tap_to_resumed_s"] <= 10,
          f"approve_digests resumed and succeeded {figures['hitl_tap_to_resumed_s']} s after the tap (goal ≤ 10 s)")  # fmt: skip
    until(d, lambda: task_state(d, run_id, "send_digests") in ("success", "failed", "skipped", "upstream_failed"),
          300, "send_digests to end")  # fmt: skip
    figures["hitl_tap_to_sent_s"] = round(time.monotonic() - tapped, 1)
    check(task_state(d, run_id, "send_digests") == "success",
          f"send_digests succeeded {figures['hitl_tap_to_sent_s']} s after the tap")  # fmt: skip
    digests = ledger(d, f"digest:{approve_day}:")
    recipients = {m["userid"] for m in sim.messages()[before:]}
    check(len(digests) > 10 and set(digests.values()) == {"sent"}
          and {r.lower() for _, r in digests} <= {r.lower() for r in recipients},
          f"the approved digests went out: {len(digests)} interviewers' digests sent and delivered")  # fmt: skip
    d.wait(
        lambda: "Approve" in (shows(sim, asked["task_id"], approver) or ""), 60, "the card to show Approve"
    )
    decided = question(d, run_id)
    check(decided["decided_via"] == "wecom" and decided["chosen"] == ["Approve"] and decided["decided_by"] == approver,
          f"wecom.questions: approved in WeCom by {approver}; the card shows {shows(sim, asked['task_id'], approver)!r}")  # fmt: skip

    step("11b. The reject path: a tap on Reject sends nothing")
    run_id, asked, _ = ask_for_approval(d, sim, approver, reject_day)
    time.sleep(5)
    check(sim.click(approver, asked["task_id"], "hitl:1").get("ok") is True, f"{approver} tapped Reject")
    d.wait(lambda: task_state(d, run_id, "send_digests") in ("success", "failed", "skipped", "upstream_failed"),
           120, "send_digests to end")  # fmt: skip
    states = {t: task_state(d, run_id, t) for t in ("approve_digests", "send_digests")}
    check(states == {"approve_digests": "success", "send_digests": "skipped"},
          f"the rejection skipped send_digests: {states}")  # fmt: skip
    d.wait(lambda: run_state(d, run_id) in ("success", "failed"), 60, "the rejected run to end")
    sent = {**ledger(d, f"digest:{reject_day}:"), **ledger(d, f"leader-digest:{reject_day}:")}
    check(run_state(d, run_id) == "success" and not sent,
          "the rejected run ended success, no digest recorded (so none sent) for its day")  # fmt: skip
    d.wait(lambda: "Reject" in (shows(sim, asked["task_id"], approver) or ""), 60, "the card to show Reject")
    decided = question(d, run_id)
    check(decided["decided_via"] == "wecom" and decided["chosen"] == ["Reject"] and decided["decided_by"] == approver,
          f"wecom.questions: rejected in WeCom by {approver}; the card shows {shows(sim, asked['task_id'], approver)!r}")  # fmt: skip

    step("11c. Answered in Airflow (the REST API, as the UI does): the card in WeCom shows it")
    run_id, asked, waiting = ask_for_approval(d, sim, approver, ui_day)
    time.sleep(max(0.0, 6 - (time.monotonic() - waiting)))  # an answer right after the task parks can fail it
    path = f"dags/{DIGEST_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve_digests/-1/hitlDetails"
    answered = time.monotonic()
    d.api("PATCH", path, json={"chosen_options": ["Reject"], "params_input": {}})
    until(d, lambda: "Reject" in (shows(sim, asked["task_id"], approver) or ""), 120,
          "the card to show the answer given in Airflow")  # fmt: skip
    figures["hitl_ui_answer_to_card_s"] = round(time.monotonic() - answered, 1)
    decided = question(d, run_id)
    check(decided["decided_via"] == "airflow" and decided["chosen"] == ["Reject"] and decided["decided_by"] == "admin",
          f"answered by admin in Airflow: the card shows {shows(sim, asked['task_id'], approver)!r}"
          f" {figures['hitl_ui_answer_to_card_s']} s after the answer")  # fmt: skip
    d.wait(lambda: task_state(d, run_id, "send_digests") in ("success", "failed", "skipped", "upstream_failed"),
           120, "send_digests to end")  # fmt: skip
    check(task_state(d, run_id, "send_digests") == "skipped" and not ledger(d, f"digest:{ui_day}:"),
          "rejected in Airflow: nothing sent")  # fmt: skip
    with psycopg.connect(d.warehouse_url) as conn:
        taps = dict(conn.execute("SELECT outcome, count(*) FROM wecom.question_taps GROUP BY 1").fetchall())
        open_cards = conn.execute("SELECT count(*) FROM wecom.question_cards WHERE card_status <> 'updated'"
                                  ).fetchone()[0]  # fmt: skip
    check(taps.get("answered") == 2 and open_cards == 0,
          f"two taps answered in Airflow ({taps}), every card shows its decision")  # fmt: skip


JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+")


def bridge_tokens(places: list[tuple[str, str]]) -> list[str]:
    """Where a JWT of the bridge's Airflow account appears (whatever its value: they are minted in tasks)."""
    found = []
    for where, text in places:
        for payload in JWT.findall(text):
            try:
                claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            except ValueError:
                continue
            if BRIDGE_LOGIN in json.dumps(claims):
                found.append(where)
    return found


def leak_scan(d: Deployment, sim: SimulatorAdmin) -> tuple[int, int]:
    secrets = {**sim.credentials(), **CALLBACK_SECRETS, "bridge password": d.bridge_password}
    places = [*postgres_rows(d.warehouse_url), *postgres_rows(d.metadata_url, skip_schemas=()), *files(d.home / "logs"),
              *files(d.logs)]  # fmt: skip
    leaks, scanned = find_leaks(secrets, places)
    leaks += [("a JWT of the bridge's account", where) for where in bridge_tokens(places)]
    for name, where in leaks:
        print(f"  LEAK: {name} in {where}")
    return len(leaks), scanned


def main() -> None:
    shutil.rmtree(HOME, ignore_errors=True)
    figures: dict = {}
    began = time.monotonic()
    sim_args = org_args(**ORG)
    org = generate_org(**ORG).users
    organizer = org[sorted(org)[0]]["userid"]  # the app's interview calendar belongs to a member
    with deployment(HOME, simulator_args=sim_args, wecom_extra={"calendar_organizer": organizer}) as d:
        figures["startup_s"] = round(time.monotonic() - began, 1)
        print(f"Deployment up in {figures['startup_s']} s: {', '.join(d.processes)}", flush=True)
        sim = SimulatorAdmin(d.simulator_url)
        figures["watching_since"] = watch_the_inbox(d)
        digest_day = scenario(d, sim, figures)
        callbacks(d, sim, figures)
        answers(d, sim, figures)
        changes(d, sim, figures)
        ask_in_wecom(d, sim, figures, next_weekday(digest_day + timedelta(days=1)))
        step("12. Leak scan: warehouse, metadata DB, task logs, process logs")
        leaks, scanned = leak_scan(d, sim)
        figures |= {"leaks": leaks, "places_scanned": scanned}
        check(leaks == 0, f"no credential in {scanned} rows and files")
        marker = d.marker
    left = leftover_processes(marker)
    check(not left, "every process started is gone")
    figures["total_s"] = round(time.monotonic() - began, 1)
    print("E2E PASSED " + json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
