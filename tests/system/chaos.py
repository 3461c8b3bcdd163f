"""``make chaos``: the whole pipeline, round after round, against a WeCom that misbehaves at random.

Each round (seeded, so a failing round can be replayed with ``--seed S --rounds N``) changes the org a
little, arms random faults (token revocation at a random moment, 45009/45033/-1 bursts, 502 with HTML,
truncated JSON, connection resets, latency), then runs what the DAGs run, each task in its own worker
process with Airflow's retries: the directory sync (migrate, fetch, stage, merge), the user mapping, a day's
digests and three reminder windows. Worker processes are SIGKILLed in the middle of sending, and the
warehouse connection is terminated in the middle of the merge. Before the sync, the org's changes reach
the callback receiver (a real ``wecom-callback-receiver`` process) as WeCom's callbacks, dropped, duplicated,
reordered or delayed at random, with the receiver SIGKILLed mid-burst and restarted, the inbox trigger (the
triggerer's part, in its own process) SIGKILLed mid-burst and restarted, and the events task SIGKILLed
mid-apply. The reminders are answerable cards: interviewers tap them (some never, some twice,
some rescheduled after the tap) through callbacks under the same faults, ``update_template_card`` fails
transiently (a 502, or an answer cut off after WeCom spent the code), the answers task is SIGKILLed, and the
escalation windows follow. Then, as an operator would after an incident, it clears the faults and re-runs
what failed, and checks the invariants:

- no message delivered twice (the simulator's record: the same content to the same member);
- every due message is sent, or in the ledger with the reason it is not;
- what the ledger says was sent is what WeCom delivered, and the other way round;
- the directory tables equal the last complete snapshot (never a partial one);
- the inbox trigger fires whenever contact events wait, restarts included, and never when none waits;
- no callback the receiver acknowledged is missing from the inbox; with no event lost (dropped, or given up
  by WeCom while the receiver was down) the events alone make the directory equal WeCom's, and the full
  sync after them finds no drift;
- one answer per reminder card, one the interviewer gave, recorded exactly when a tap reached the inbox;
  each card shows the recorded answer (or says why it cannot); every decline told; every unanswered card
  escalated once when its window ran, and no escalation after an answer;
- no silent drop counted by the simulator;
- no credential in any log written or any warehouse row outside the private token table.

Profiles: ``ci`` (the default, a few minutes) and ``soak`` (longer, by hand).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".chaos"
os.environ.setdefault("AIRFLOW_HOME", str(HOME / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import psycopg  # noqa: E402

from wecom.directory import tasks as directory  # noqa: E402
from wecom.interviews import tasks as interviews  # noqa: E402
from wecom.interviews.cards import CHOICES, answer_text  # noqa: E402
from wecom.interviews.inputs import leaders_of  # noqa: E402
from wecom.interviews.render import LOCAL_TZ  # noqa: E402
from wecom.interviews.settings import DIGEST, REMINDERS  # noqa: E402
from wecom.outbox import Claimant  # noqa: E402
from wecom_dev import demo_data  # noqa: E402
from wecom_dev.days import weekday_ahead  # noqa: E402
from wecom_dev.environment import (  # noqa: E402
    airflow_connections,
    org_args,
    postgres_conn_json,
    scratch_database,
    simulator_process,
    start_receiver,
    wecom_conn_json,
)
from wecom_dev.leaks import files, find_leaks, postgres_rows  # noqa: E402
from wecom_dev.platform import create_platform_schema  # noqa: E402
from wecom_dev.processes import free_port  # noqa: E402
from wecom_simulator import SimulatorAdmin, generate_org  # noqa: E402

PROFILES = {"ci": 40, "soak": 400}
ORG = {"users": 200, "departments": 20, "seed": 3}
FIRST_DAY = weekday_ahead(0, weeks=2)  # a Monday ahead of the machine's clock: nothing expires
RETRIES = 2  # as the DAGs' default_args
CALLBACK_SECRETS = {
    "callback_token": "chaosCallbackToken01",
    "callback_aes_key": "kWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
}
EVENT_FAULTS = [{}, {"drop": 0.3}, {"duplicate": 0.5}, {"reorder": True}, {"delay_ms": 40},
                {"duplicate": 0.5, "reorder": True, "delay_ms": 20}]  # fmt: skip
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 1, 3
SETTLE_S = CONNECT_TIMEOUT_S + READ_TIMEOUT_S + 0.5
CHANGE_FAULTS = [  # kind, options, API: while interviews change
    ("lost_answer", {}, "oa/schedule/add"),  # WeCom added the schedule, its answer never came back
    ("latency", {"latency_ms": 700}, "oa/schedule/add"),  # room for a kill between the call and recording it
    ("http502", {}, "oa/schedule/update"),
    ("errcode", {"errcode": -1}, "oa/schedule/del"),
    ("reset", {}, "message/send"),
    ("truncated", {}, "message/update_template_card"),
    ("errcode", {"errcode": 45033}, "oa/schedule/get_by_calendar"),
]
API_FAULTS = [  # kind, options, APIs it may hit
    ("errcode", {"errcode": 45009}, ["message/send", "user/list", "*"]),
    ("errcode", {"errcode": 45033}, ["message/send", "user/list", "department/list"]),
    ("errcode", {"errcode": -1}, ["message/send", "user/list", "gettoken", "*"]),
    ("http502", {}, ["message/send", "user/list", "department/list", "gettoken", "*"]),
    ("truncated", {}, ["message/send", "user/list", "department/list", "*"]),
    ("reset", {}, ["message/send", "user/list", "*"]),
    ("latency", {"latency_ms": 400}, ["message/send", "user/list", "*"]),
]


def weekday(n: int) -> date:
    """The n-th working day from FIRST_DAY: each round has a day of its own."""
    return FIRST_DAY + timedelta(days=7 * (n // 5) + n % 5)


class Chaos:
    def __init__(
        self,
        rng: random.Random,
        sim: SimulatorAdmin,
        db_url: str,
        logs: Path,
        receiver: Receiver,
        watcher: Watcher,
    ) -> None:
        self.rng, self.sim, self.db_url, self.logs, self.receiver = rng, sim, db_url, logs, receiver
        self.watcher = watcher
        # Events not in the inbox since the last full sync (drift allowed); before the first sync the
        # directory is empty, so everything is to catch up.
        self.lost_since_sync = 1
        self.faults: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()  # how often each conditional invariant was checked
        self.violations: list[str] = []
        self.expected_directory: dict | None = None
        # Departments renamed since the last full sync: WeCom announces no rename, so until the full sync
        # the events cannot know their names (and drift does not count them).
        self.renamed_since_sync: set[int] = set()
        self.seen_twice: set[tuple[str, str]] = set()

    # -- running tasks as Airflow runs them: a worker process, retries -----------------------------

    def attempts(self, name: str, task: Callable[[], None], kill: bool = False, drop: bool = False) -> bool:
        """Run ``task`` in a worker process, retried like an Airflow task; True when an attempt succeeded."""
        for attempt in range(1 + RETRIES):
            done, dropper = threading.Event(), None
            if drop and attempt == 0:
                dropper = threading.Thread(target=self.drop_merge_connection, args=(done,))
                dropper.start()
            kill_after = self.rng.uniform(0.05, 0.6) if kill and attempt == 0 else None
            outcome = worker(task, self.logs / f"{name}.log", kill_after=kill_after)
            done.set()
            if dropper:
                dropper.join()
            if outcome == "killed":
                self.faults["worker killed mid-task"] += 1
            if outcome == "ok":
                return True
        return False

    def drop_merge_connection(self, done: threading.Event) -> None:
        """Terminate the warehouse connection that is in the middle of the directory merge, if seen."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while not done.is_set():
                dropped = conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                    r" AND query ~* '(update|insert into|delete from) wecom\.(departments|users|user_departments)\M'"
                ).fetchone()[0]
                if dropped:
                    self.faults["warehouse connection dropped mid-merge"] += dropped
                    return
                time.sleep(0.002)

    # -- one round -----------------------------------------------------------------------------------

    def arm_faults(self) -> threading.Timer | None:
        for _ in range(self.rng.randint(1, 4)):
            kind, options, paths = self.rng.choice(API_FAULTS)
            path = self.rng.choice(paths)
            count = self.rng.randint(1, 6)
            self.sim.fault(kind, path=path, count=count, **options)
            label = f"{options.get('errcode', kind)} on {path}"
            self.faults[label] += count
        if self.rng.random() < 0.5:
            timer = threading.Timer(self.rng.uniform(0.0, 3.0), self.revoke)
            timer.start()
            return timer
        return None

    def revoke(self) -> None:
        self.sim.revoke_tokens()
        self.faults["token revoked"] += 1

    def change_org(self, n: int) -> None:
        users = sorted(self.sim.org()["users"], key=lambda u: u["userid"])
        departments = sorted(d["id"] for d in self.sim.org()["departments"])
        chosen = self.rng.sample(users, 4)
        renamed, led = self.rng.choice(departments[1:]), self.rng.choice(departments)
        self.renamed_since_sync.add(renamed)
        members = [u["userid"] for u in users if led in u["department"]] or [chosen[0]["userid"]]
        ops: list[dict] = [
            {"op": "rename_department", "id": renamed, "name": f"部门-{n}"},
            # announced only as update_user of the members whose IsLeaderInDept changed
            {"op": "set_leader", "department_id": led, "userids": [self.rng.choice(members)]},
            {"op": "move_user", "userid": chosen[0]["userid"], "departments": [self.rng.choice(departments)]},
            {"op": "update_user", "userid": chosen[1]["userid"], "fields": {"name": f"改名{n}"}},
        ]
        if n % 4 == 1:  # a hire, a departure and a userid change
            hire = {**chosen[2], "userid": f"chaoshire{n}", "name": f"入职{n}"}
            ops += [{"op": "add_user", "user": hire}, {"op": "remove_user", "userid": chosen[2]["userid"]},
                    {"op": "change_userid", "userid": chosen[3]["userid"], "new_userid": f"chaosid{n}"}]  # fmt: skip
        self.sim.mutate(*ops)

    def follow_events(self, n: int) -> None:
        """The changes as callbacks under faults, the receiver killed mid-burst, the events task killed
        mid-apply; then the callback invariants."""
        faults = self.rng.choice(EVENT_FAULTS)
        for name in faults:
            self.faults[f"callbacks {name}"] += 1
        token, aes_key = CALLBACK_SECRETS["callback_token"], CALLBACK_SECRETS["callback_aes_key"]
        self.sim.send_callbacks(self.receiver.url, token, aes_key, **faults)
        killer = restarter = None
        if self.rng.random() < 0.25:
            killer = threading.Timer(self.rng.uniform(0.0, 0.2), self.receiver.kill)
            killer.start()
        if self.rng.random() < 0.25:  # the triggerer restarts mid-burst
            restarter = threading.Timer(self.rng.uniform(0.0, 0.3), self.restart_watcher)
            restarter.start()
        fired_before = len(self.watcher.fired())
        self.change_org(n)
        if killer:
            killer.join()
            self.faults["receiver killed mid-burst"] += 1
            self.receiver.start()
        if restarter:
            restarter.join()
        deadline = time.monotonic() + 60
        while not self.sim.callbacks()["idle"] and time.monotonic() < deadline:
            time.sleep(0.1)
        delivery = self.sim.callbacks()
        with psycopg.connect(self.db_url) as conn:
            stored = {h for (h,) in conn.execute("SELECT payload_sha256 FROM wecom.callback_events")}
        if set(delivery["acknowledged"]) - stored:
            self.violation(
                n, f"{len(set(delivery['acknowledged']) - stored)} acknowledged callbacks not in the inbox"
            )
        lost = delivery["dropped"] + delivery["failed"]
        self.lost_since_sync += lost
        self.check_trigger(n, fired_before)

        def task() -> None:
            directory.apply_events({}, dag_run_id=f"chaos-events-{n}")

        if not self.attempts("events", task, kill=self.rng.random() < 0.4):
            self.violation(n, "the events task failed even with retries")
        with psycopg.connect(self.db_url) as conn:
            waiting = conn.execute("SELECT count(*) FROM wecom.callback_events WHERE processed_at IS NULL"
                                   " AND event = 'change_contact'").fetchone()[0]  # fmt: skip
        if waiting:
            self.violation(n, f"{waiting} contact events left unprocessed")
        if lost:
            self.faults["callbacks lost (dropped, or given up while the receiver was down)"] += lost
        if not self.lost_since_sync:
            self.checks["directory = WeCom after the events, before the full sync"] += 1
            unnamed = self.renamed_since_sync
            got = directory_in_warehouse(self.db_url, unnamed)
            wecom = directory_of_org(self.sim.org(), unnamed)
            if got != wecom:
                self.violation(n, "no event was lost, yet the directory differs from WeCom before the full sync: "
                               + difference(got, wecom))  # fmt: skip

    def restart_watcher(self) -> None:
        self.watcher.kill()
        self.watcher.start()
        self.faults["triggerer restarted mid-burst"] += 1

    def check_trigger(self, n: int, fired_before: int) -> None:
        """Events waiting: the inbox trigger fires for the newest of them (a restart mid-burst included),
        within its 10 s look at the latest. Nothing waiting (every event dropped): it does not fire."""
        with psycopg.connect(self.db_url) as conn:
            newest = conn.execute("SELECT max(event_id) FROM wecom.callback_events WHERE processed_at IS NULL"
                                  " AND event = 'change_contact'").fetchone()[0]  # fmt: skip
        deadline = time.monotonic() + 15
        while newest and max(self.watcher.fired(), default=0) < newest and time.monotonic() < deadline:
            time.sleep(0.1)
        fired = self.watcher.fired()[fired_before:]
        if newest:
            self.checks["the inbox trigger fired for waiting events"] += 1
            if max(fired, default=0) < newest:
                self.violation(
                    n, f"contact events up to {newest} wait, but the inbox trigger fired for {fired}"
                )
        elif fired:
            self.violation(n, f"nothing waits, yet the inbox trigger fired {len(fired)} time(s)")

    def sync_directory(self, n: int) -> None:
        def task() -> None:
            directory.migrate()
            directory.apply(directory.fetch(dag_run_id=f"chaos-{n}")["snapshot_id"], dag_run_id=f"chaos-{n}")

        org = self.sim.org()  # the org does not change during the round
        synced = self.attempts("directory", task, drop=self.rng.random() < 0.4)
        if not synced:  # after the incident, the operator clears the faults and the failed task
            self.sim.clear_faults()
            synced = self.attempts("directory-cleared", task)
            if not synced:
                self.violation(n, "the directory sync failed even without faults")
        if synced:
            self.expected_directory = directory_of_org(org)
            with psycopg.connect(self.db_url) as conn:
                drift = conn.execute("SELECT drift FROM wecom.sync_runs WHERE kind = 'full' AND status = 'succeeded'"
                                     " ORDER BY sync_run_id DESC LIMIT 1").fetchone()[0]  # fmt: skip
            if not self.lost_since_sync:
                self.checks["no drift in a full sync after no lost event"] += 1
                if drift:
                    self.violation(n, f"the full sync found drift {drift} though no event was lost")
            self.lost_since_sync = 0
            self.renamed_since_sync.clear()
        elif self.lost_since_sync:
            return  # behind WeCom by the lost events, as expected, until a full sync succeeds
        else:  # the events brought it to WeCom's state (but unannounced renames), a failed sync changed nothing
            self.expected_directory = directory_of_org(org, self.renamed_since_sync)
        got = directory_in_warehouse(self.db_url, self.renamed_since_sync)
        if got != self.expected_directory:
            self.violation(
                n,
                "the directory tables differ from the last complete snapshot: "
                + difference(got, self.expected_directory),
            )

    def send(self, n: int) -> None:
        day = weekday(n)
        org = generate_org(**ORG)
        data = demo_data.generate(org, first_day=day, days=1, interviewers=60, per_day=12, seed=n)
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            create_platform_schema(conn)
            demo_data.load(conn, data)
        windows = [(datetime.combine(day, clock(h, 23), LOCAL_TZ), datetime.combine(day, clock(h, 33), LOCAL_TZ))
                   for h in (8, 9, 10)]  # fmt: skip
        claimant = Claimant("chaos", f"round-{n}", "send")

        def task() -> None:
            interviews.refresh()
            interviews.send_digest(day, claimant)
            for start, end in windows:
                interviews.send_reminders(start, end, claimant)

        delivered_before = len(self.sim.messages())
        if not self.attempts("send", task, kill=self.rng.random() < 0.4):
            self.sim.clear_faults()  # after the incident, the operator clears the failed task
            if not self.attempts("send-cleared", task):
                self.violation(n, "sending failed even without faults")
        self.check_messages(n, day, windows, delivered_before)

    def check_messages(self, n: int, day: date, windows: list, delivered_before: int) -> None:
        with psycopg.connect(self.db_url) as wh:
            due, _ = interviews.plan_digest(wh, wh, day, DIGEST)
            for start, end in windows:
                due += interviews.plan_reminders(wh, wh, start, end, REMINDERS).messages
            rows = wh.execute(
                "SELECT dedup_key, lower(recipient), status, reason, msgid FROM wecom.message_log"
                " WHERE dedup_key = ANY(%s)",
                ([m.dedup_key for m in due],),
            ).fetchall()
        ledger = {(key, recipient): (status, reason, msgid) for key, recipient, status, reason, msgid in rows}
        if not due:
            self.violation(n, "no message was due: the round tests nothing")
        for message in due:
            status, reason, _ = ledger.get((message.dedup_key, message.recipient.lower()), (None, None, None))
            if status is None:
                self.violation(n, f"{message.dedup_key} is neither sent nor in the ledger")
            elif status != "sent" and not reason:
                self.violation(n, f"{message.dedup_key} is {status} without a reason")
            elif status == "pending":
                self.violation(n, f"{message.dedup_key} is still pending after the round")
        delivered = self.sim.messages()
        everything = {(m["msgid"], m["userid"]) for m in delivered}
        sent = {
            (msgid, recipient) for (_, recipient), (status, _, msgid) in ledger.items() if status == "sent"
        }
        if sent - everything:
            self.violation(n, f"{len(sent - everything)} messages the ledger calls sent were never delivered")
        new = {(m["msgid"], m["userid"]) for m in delivered[delivered_before:]}
        with psycopg.connect(self.db_url) as wh:
            recorded = set(wh.execute("SELECT msgid, lower(recipient) FROM wecom.message_log WHERE status = 'sent'"
                                      " AND msgid = ANY(%s)", ([m for m, _ in new],)).fetchall())  # fmt: skip
        if new - recorded:
            with psycopg.connect(self.db_url) as wh:
                rows = wh.execute("SELECT dedup_key, lower(recipient), status, msgid, reason FROM wecom.message_log"
                                  " WHERE lower(recipient) = ANY(%s) ORDER BY message_id DESC LIMIT 10",
                                  ([u for _, u in new - recorded],)).fetchall()  # fmt: skip
            self.violation(n, f"{len(new - recorded)} messages delivered but not recorded as sent: "
                              f"{sorted(new - recorded)[:5]}; their members' latest ledger rows: {rows}")  # fmt: skip
        twice = {k for k, c in Counter((m["userid"], m["content"]) for m in delivered).items() if c > 1}
        if twice - self.seen_twice:
            self.violation(n, f"{len(twice - self.seen_twice)} messages delivered twice")
            self.seen_twice |= twice
        if self.sim.stats()["silent_drops"]:
            self.violation(n, "WeCom dropped messages silently")

    def violation(self, n: int, what: str) -> None:
        self.violations.append(f"round {n}: {what}")
        print(f"  VIOLATION round {n}: {what}", flush=True)

    def answer(self, n: int) -> None:
        """Taps on this round's cards under callback faults, the answers task under update faults and
        kills, a reschedule, then the escalation windows; the answer invariants."""
        day = weekday(n)
        cards = self.sql("SELECT c.task_id, c.userid, c.interview_id FROM wecom.reminder_cards c"
                         " JOIN wecom.message_log l ON l.dedup_key = c.dedup_key AND l.recipient = c.userid"
                         " WHERE l.status = 'sent' AND l.errcode IS NULL"
                         " AND (c.starts_at AT TIME ZONE 'Asia/Shanghai')::date = %s ORDER BY 1", day)  # fmt: skip
        if not cards:  # the day's random interviews left the reminder windows empty
            self.checks["rounds without a reminder card to tap"] += 1
            return
        faults = self.rng.choice(EVENT_FAULTS)
        token, aes_key = CALLBACK_SECRETS["callback_token"], CALLBACK_SECRETS["callback_aes_key"]
        self.sim.send_callbacks(self.receiver.url, token, aes_key, **faults)
        before = self.sim.callbacks()
        for task_id, userid, _ in cards:
            taps = self.rng.choice(
                [[], ["confirm"], ["decline"], ["confirm", "decline"], ["decline", "confirm"]]
            )
            for key in taps:
                self.sim.click(userid, task_id, key)
                self.faults[f"card taps ({len(taps)} on one card)"] += 1
        deadline = time.monotonic() + 60
        while not self.sim.callbacks()["idle"] and time.monotonic() < deadline:
            time.sleep(0.1)
        after = self.sim.callbacks()
        lost = after["dropped"] + after["failed"] - before["dropped"] - before["failed"]
        self.faults["card taps lost"] += lost
        if self.rng.random() < 0.3:  # an interview moves after its card was tapped (or not)
            _, _, interview_id = self.rng.choice(cards)
            self.sql("UPDATE interview.interviews SET start_at = start_at + interval '10 minutes',"
                     " end_at = end_at + interval '10 minutes' WHERE id = %s", interview_id)  # fmt: skip
            self.faults["interview rescheduled after its card"] += 1
        if self.rng.random() < 0.6:
            kind = self.rng.choice(["http502", "truncated", "reset"])
            count = self.rng.randint(1, 4)
            self.sim.fault(kind, path="message/update_template_card", count=count)
            self.faults[f"{kind} on message/update_template_card"] += count

        def answers() -> None:
            interviews.apply_answers(Claimant("chaos", f"answers-{n}", "apply_answers"))

        if not self.attempts("answers", answers, kill=self.rng.random() < 0.3):
            self.sim.clear_faults()
            if not self.attempts("answers-cleared", answers):
                self.violation(n, "the answers task failed even without faults")
        windows = [(datetime.combine(day, clock(h, m), LOCAL_TZ), datetime.combine(day, clock(h, m + 10), LOCAL_TZ))
                   for h in (8, 9, 10) for m in (33, 43)]  # fmt: skip

        def escalate() -> None:
            for start, end in windows:
                interviews.send_reminders(start, end, Claimant("chaos", f"escalate-{n}", "send"))

        if not self.attempts("escalate", escalate):
            self.violation(n, "the escalation windows failed without faults")
        self.check_answers(n, day, windows)

    def check_answers(self, n: int, day: date, windows: list) -> None:
        taps: dict[str, set[str]] = {}
        for task_id, key in self.sql(
            "SELECT payload->>'TaskId', payload->>'EventKey' FROM wecom.callback_events"
            " WHERE event = 'template_card_event'"
        ):
            taps.setdefault(task_id, set()).add(key)
        if self.sql("SELECT 1 FROM wecom.callback_events WHERE processed_at IS NULL"):
            self.violation(n, "callback events left unprocessed after the answers task")
        cards = {c["task_id"]: c for c in self.sim.cards()}
        responses = self.sql(
            "SELECT c.task_id, c.userid, c.language, r.choice, r.clicked_at, r.card_status, r.card_note,"
            " r.notified_at FROM wecom.reminder_cards c LEFT JOIN wecom.reminder_responses r USING (task_id)"
            " WHERE (c.starts_at AT TIME ZONE 'Asia/Shanghai')::date = %s", day)  # fmt: skip
        for task_id, userid, language, choice, clicked_at, card_status, note, notified in responses:
            given = {CHOICES[k] for k in taps.get(task_id, ())}
            shown = cards[task_id]["shown"].get(userid) if task_id in cards else None
            if given and choice not in given:
                self.violation(n, f"{task_id}: recorded {choice}, but the taps that arrived were {given}")
            elif not given and choice:
                self.violation(n, f"{task_id}: an answer recorded without a tap in the inbox")
            elif card_status == "updated" and shown != answer_text(choice, clicked_at, language):
                self.violation(n, f"{task_id}: the card shows {shown!r}, not the recorded {choice}")
            elif card_status in ("pending", "not_updated") and shown is not None:
                self.violation(n, f"{task_id}: card {card_status} yet it shows {shown!r}")
            elif card_status == "pending" or (card_status == "not_updated" and not note):
                self.violation(n, f"{task_id}: the card is {card_status} without a reason")
            elif choice is None and shown is not None:
                self.violation(n, f"{task_id}: no answer, yet the card shows {shown!r}")
            elif choice == "declined" and notified is None:
                self.violation(n, f"{task_id}: a decline nobody was told of")
            self.checks["answer invariants on a card"] += 1
        late = self.sql(
            "SELECT l.dedup_key FROM wecom.message_log l JOIN wecom.reminder_cards c"
            " ON l.dedup_key = 'escalation:' || substr(c.dedup_key, 10)"
            " JOIN wecom.reminder_responses r ON r.task_id = c.task_id WHERE l.status = 'sent' AND r.recorded_at < l.claimed_at")  # fmt: skip
        if late:
            self.violation(n, f"{len(late)} escalation(s) sent after the answer")
        unanswered = self.sql(
            "SELECT c.userid, c.dedup_key, c.starts_at FROM wecom.reminder_cards c"
            " JOIN wecom.message_log l ON l.dedup_key = c.dedup_key AND l.recipient = c.userid"
            " JOIN interview.interviews i ON i.id = c.interview_id AND i.start_at = c.starts_at"
            " WHERE l.status = 'sent' AND l.errcode IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM wecom.reminder_responses r WHERE r.task_id = c.task_id)"
            " AND (c.starts_at AT TIME ZONE 'Asia/Shanghai')::date = %s", day)  # fmt: skip
        with psycopg.connect(self.db_url) as conn:
            leaders = leaders_of(conn, sorted({u for u, _, _ in unanswered}))
        for userid, key, starts_at in unanswered:
            due = starts_at - timedelta(minutes=15)
            if not leaders.get(userid) or not any(start <= due < end for start, end in windows):
                continue
            self.checks["unanswered card escalated"] += 1
            escalation = "escalation:" + key.removeprefix("reminder:")
            statuses = [
                s
                for (s,) in self.sql("SELECT status FROM wecom.message_log WHERE dedup_key = %s", escalation)
            ]
            # skipped: WeCom refused the leader (e.g. gone since); the ledger says why
            if len(statuses) != len(leaders[userid]) or not set(statuses) <= {"sent", "deferred", "skipped"}:
                self.violation(
                    n, f"{escalation}: not escalated once to each of {leaders[userid]}: {statuses}"
                )

    def change_interviews(self, n: int) -> None:
        """The platform cancels, moves and re-staffs some of this round's interviews after their cards;
        interviewers tap the superseded cards; the changes and the calendar run under faults and kills
        (a worker killed between schedule/add and recording it, answers lost after WeCom acted), then once
        more without faults, as the next run would. The change invariants."""
        day = weekday(n)
        since = datetime.combine(day, clock(0), LOCAL_TZ)
        settings = REMINDERS  # 14 days ahead of the round's day: the reloaded platform is all in view

        def changes() -> None:
            interviews.track_changes(since, Claimant("chaos", f"changes-{n}", "track"), settings)

        def calendar() -> None:
            interviews.sync_calendar(settings)

        # The round's interviews as announced (version 1) and added to the calendar, under faults and kills.
        self.arm_change_faults()
        self.attempts("changes", changes)
        if not self.attempts("calendar-add", calendar, kill=self.rng.random() < 0.5):
            self.faults["calendar task failed under faults"] += 1
        self.sim.clear_faults()
        ids = [i for (i,) in self.sql("SELECT id FROM interview.interviews WHERE status = 'scheduled'"
                                      " AND (start_at AT TIME ZONE 'Asia/Shanghai')::date = %s ORDER BY id", day)]  # fmt: skip
        if len(ids) < 3:
            self.checks["rounds without interviews to change"] += 1
            return
        carded = sorted({i for (i,) in self.sql("SELECT interview_id FROM wecom.reminder_cards WHERE"
                                                " interview_id = ANY(%s)", ids)})  # fmt: skip
        cancel, move = self.rng.sample(carded, 2) if len(carded) >= 2 else self.rng.sample(ids, 2)
        staff = self.rng.choice([i for i in ids if i not in (cancel, move)])
        self.sql("UPDATE interview.interviews SET status = 'cancelled' WHERE id = %s", cancel)
        self.sql("UPDATE interview.interviews SET start_at = start_at + interval '1 day 30 minutes',"
                 " end_at = end_at + interval '1 day 30 minutes' WHERE id = %s", move)  # fmt: skip
        self.sql("INSERT INTO interview.interview_interviewers (interview_id, user_id)"
                 " SELECT %s, min(user_id) FROM interview.interview_interviewers WHERE user_id NOT IN"
                 " (SELECT user_id FROM interview.interview_interviewers WHERE interview_id = %s)"
                 " ON CONFLICT DO NOTHING", staff, staff)  # fmt: skip
        self.faults["interviews cancelled, moved, re-staffed"] += 3
        self.arm_change_faults()
        if not self.attempts("changes", changes, kill=self.rng.random() < 0.4):
            self.faults["changes task failed under faults"] += 1
        # Taps on cards of changed interviews: before the correction lands, or after (then WeCom refuses).
        for task_id, userid in self.sql("SELECT task_id, userid FROM wecom.reminder_cards WHERE interview_id"
                                        " IN (%s, %s)", cancel, move):  # fmt: skip
            if self.rng.random() < 0.5:
                self.sim.click(userid, task_id, self.rng.choice(["confirm", "decline"]))
                self.faults["taps on superseded cards"] += 1
        if not self.attempts("calendar", calendar, kill=self.rng.random() < 0.5):
            self.faults["calendar task failed under faults"] += 1
        self.sim.clear_faults()
        deadline = time.monotonic() + 30
        while not self.sim.callbacks()["idle"] and time.monotonic() < deadline:
            time.sleep(0.1)

        def answers() -> None:
            interviews.apply_answers(Claimant("chaos", f"answers-after-changes-{n}", "apply_answers"))

        # The next runs, without faults; an add a killed worker sent may land until its request times out
        # (connect + read timeout), and only then does the calendar's list prove it never will.
        if self.sql("SELECT 1 FROM wecom.calendar_entries WHERE state = 'claimed' AND schedule_id IS NULL"):
            time.sleep(SETTLE_S)
            self.checks["waited for adds possibly in flight"] += 1
        for name, task in (("changes-next", changes), ("calendar-next", calendar), ("answers-next", answers)):
            if not self.attempts(name, task):
                self.violation(n, f"{name} failed without faults")
        self.check_changes(n, {cancel, move, staff})
        adopted = self.sql("SELECT count(*) FROM wecom.calendar_log WHERE action = 'adopt'")[0][0]
        self.checks["schedules adopted after an interrupted add (total)"] = adopted

    def arm_change_faults(self) -> None:
        for kind, options, path in self.rng.sample(CHANGE_FAULTS, self.rng.randint(1, 3)):
            count = self.rng.randint(1, 3)
            self.sim.fault(kind, path=path, count=count, **options)
            self.faults[f"{options.get('errcode', kind)} on {path}"] += count

    def check_changes(self, n: int, changed: set[int]) -> None:
        live: dict[int, list[dict]] = {}
        for schedule in self.sim.schedules():
            if schedule["status"] == 0:
                number = int(schedule["description"].split("面试编号 Interview no.: ")[1].split("\n")[0])
                live.setdefault(number, []).append(schedule)
        twice = {i: len(s) for i, s in live.items() if len(s) > 1}
        if twice:
            self.violation(n, f"duplicate schedules: {twice}")
        self.checks["calendar checked for duplicates"] += 1
        platform = self.sql(
            "SELECT i.id, i.status, floor(extract(epoch FROM i.start_at))::bigint, floor(extract(epoch FROM i.end_at))::bigint,"
            " array(SELECT lower(m.wecom_userid) FROM interview.interview_interviewers x JOIN wecom.user_mapping m"
            " ON m.platform_user_id = x.user_id WHERE x.interview_id = i.id AND m.wecom_userid IS NOT NULL ORDER BY 1)"
            " FROM interview.interviews i WHERE i.id IN (SELECT interview_id FROM wecom.interview_versions)"
            " AND i.end_at > now()")  # fmt: skip
        for interview_id, status, start, end, panel in platform:
            found = live.get(interview_id, [])
            if status == "cancelled" and found:
                self.violation(n, f"interview {interview_id} is cancelled but still in the calendar")
            elif status != "cancelled" and (
                len(found) != 1
                or (found[0]["start_time"], found[0]["end_time"]) != (start, end)
                or sorted(a["userid"].lower() for a in found[0]["attendees"]) != sorted(panel)
            ):
                shown = [(s["start_time"], s["end_time"], sorted(a["userid"].lower() for a in s["attendees"]))
                         for s in found]  # fmt: skip
                entry = self.sql("SELECT version, state, note FROM wecom.calendar_entries WHERE interview_id = %s",
                                 interview_id)  # fmt: skip
                entry += self.sql("SELECT version, status, starts_at, changes, announced_at IS NOT NULL, run_id"
                                  " FROM wecom.interview_versions WHERE interview_id = %s ORDER BY 1", interview_id)  # fmt: skip
                self.violation(n, f"interview {interview_id}: the calendar shows {shown}, the platform"
                                  f" {(start, end, sorted(panel))} (entry {entry})")  # fmt: skip
            self.checks["calendar entry agrees with the platform"] += 1
        cards = {c["task_id"]: c["shown"] for c in self.sim.cards()}
        for task_id, userid, status, note in self.sql(
            "SELECT c.task_id, c.userid, c.correction_status, c.correction_note FROM wecom.reminder_cards c"
            " JOIN interview.interviews i ON i.id = c.interview_id JOIN wecom.message_log l"
            " ON l.dedup_key = c.dedup_key AND l.recipient = c.userid AND l.status = 'sent' AND l.errcode IS NULL"
            " WHERE i.status = 'cancelled' OR i.start_at <> c.starts_at"):  # fmt: skip
            if task_id in cards and cards[task_id].get(userid) is None:
                if status != "not_corrected" or not note:
                    self.violation(n, f"{task_id}: a live card for a cancelled or moved interview ({status})")
                else:
                    self.checks["superseded card not correctable, notice says it"] += 1
            self.checks["superseded card shows its correction"] += 1
        counted = self.sql(
            "SELECT count(*) FROM wecom.reminder_responses r JOIN wecom.reminder_cards c USING (task_id)"
            " WHERE c.superseded_at IS NOT NULL AND r.recorded_at > c.superseded_at")  # fmt: skip
        if counted[0][0]:
            self.violation(n, f"{counted[0][0]} tap(s) on superseded cards counted as answers")
        notices = self.sql(
            "SELECT v.interview_id, v.version, l.recipient, l.status, l.reason FROM wecom.interview_versions v"
            " LEFT JOIN wecom.message_log l ON l.dedup_key = 'change:' || v.interview_id || ':v' || v.version"
            " WHERE v.version > 1 AND v.interview_id = ANY(%s)", sorted(changed))  # fmt: skip
        unannounced = self.sql("SELECT count(*) FROM wecom.interview_versions WHERE announced_at IS NULL")
        if unannounced[0][0]:
            self.violation(n, f"{unannounced[0][0]} change(s) never announced")
        for interview_id, version, recipient, status, reason in notices:
            if recipient is not None and status != "sent" and not reason:
                self.violation(
                    n, f"change:{interview_id}:v{version} to {recipient} is {status} without a reason"
                )
            self.checks["change notice sent or recorded why not"] += 1

    def sql(self, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def round(self, n: int) -> None:
        self.follow_events(n)
        timer = self.arm_faults()
        self.sync_directory(n)
        self.send(n)
        if timer:
            timer.cancel()
            timer.join()
        self.sim.clear_faults()
        self.answer(n)
        self.sim.clear_faults()
        self.change_interviews(n)
        self.sim.clear_faults()


class Receiver:
    """``wecom-callback-receiver`` as deployed: its own process, killable, restartable on the same port."""

    def __init__(self, logs: Path) -> None:
        self.port, self.log = free_port(), logs / "receiver.log"
        self.url = f"http://127.0.0.1:{self.port}/wecom/callback"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = start_receiver(self.port, out)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Watcher:
    """The triggerer's part: the contact-events asset's own inbox trigger in a process of its own (killable,
    restartable), each fire written to a file as the newest event id it fired for."""

    def __init__(self, logs: Path) -> None:
        self.fires, self.log = logs / "trigger-fires.txt", logs / "trigger.log"
        self.fires.touch()
        self.process: multiprocessing.Process | None = None

    def start(self) -> None:
        self.process = multiprocessing.get_context("fork").Process(target=_run_logged,
                                                                   args=(self._watch, self.log))  # fmt: skip
        self.process.start()

    def _watch(self) -> None:
        import asyncio

        from wecom.assets import CONTACT_EVENTS

        (watcher,) = CONTACT_EVENTS.watchers

        async def watch() -> None:
            async for event in watcher.trigger.run():
                with open(self.fires, "a") as out:
                    out.write(f"{event.payload['newest_event_id']}\n")

        asyncio.run(watch())

    def fired(self) -> list[int]:
        return [int(line) for line in self.fires.read_text().split()]

    def kill(self) -> None:
        if self.process and self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.join()


def worker(task: Callable[[], None], log: Path, kill_after: float | None = None) -> str:
    """``task`` in a forked worker process writing its own log; 'ok', 'failed' or 'killed'."""
    process = multiprocessing.get_context("fork").Process(target=_run_logged, args=(task, log))
    process.start()
    process.join(kill_after)
    if process.is_alive():
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        return "killed"
    return "ok" if process.exitcode == 0 else "failed"


def _run_logged(task: Callable[[], None], log: Path) -> None:
    with open(log, "a") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)
    try:
        task()
    except BaseException:  # noqa: BLE001 - the worker reports any failure by its exit code
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stderr.flush()
    os._exit(0)


def difference(got: dict, expected: dict) -> str:
    """What the warehouse has that WeCom has not (+) and the other way round (-), a few of each."""
    parts = []
    for table in expected:
        extra, missing = sorted(got[table] - expected[table])[:3], sorted(expected[table] - got[table])[:3]
        if extra or missing:
            parts.append(f"{table} +{extra} -{missing}")
    return "; ".join(parts)


def directory_of_org(org: dict, unnamed: set[int] = frozenset()) -> dict:
    """WeCom's directory: departments with their leaders, members, memberships with the leader flag; the
    names of ``unnamed`` departments left out (renames WeCom has not announced)."""
    return {
        "departments": {(d["id"], None if d["id"] in unnamed else d["name"], d.get("parentid"),
                         tuple(d.get("department_leader") or ())) for d in org["departments"]},
        "users": {(u["userid"], u["name"]) for u in org["users"]},
        "memberships": {(u["userid"], d, bool(flag)) for u in org["users"]
                        for d, flag in zip(u["department"], u["is_leader_in_dept"], strict=True)},
    }  # fmt: skip


def directory_in_warehouse(url: str, unnamed: set[int] = frozenset()) -> dict:
    with psycopg.connect(url) as conn:

        def rows(query: str, *args: object) -> set[tuple]:
            return {
                tuple(tuple(v) if isinstance(v, list) else v for v in row)
                for row in conn.execute(query, args)
            }

        return {
            "departments": rows("SELECT department_id, CASE WHEN department_id <> ALL(%s) THEN name END, parent_id,"
                                " leaders FROM wecom.departments WHERE deleted_at IS NULL", sorted(unnamed)),
            "users": rows("SELECT userid, name FROM wecom.users WHERE deleted_at IS NULL"),
            "memberships": rows("SELECT m.userid, m.department_id, m.is_leader FROM wecom.user_departments m"
                                " JOIN wecom.users u USING (userid) WHERE u.deleted_at IS NULL"),
        }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="ci")
    parser.add_argument("--rounds", type=int, help="overrides the profile's number of rounds")
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args(argv)
    rounds = args.rounds or PROFILES[args.profile]
    shutil.rmtree(HOME, ignore_errors=True)
    logs = HOME / "logs"
    logs.mkdir(parents=True)
    began = time.monotonic()
    sim_args = org_args(**ORG)
    with scratch_database("wecom_chaos") as db_url, simulator_process(*sim_args) as sim_url:
        organizer = sorted(u["userid"] for u in generate_org(**ORG).users.values())[0]
        connections = {"wecom_default": wecom_conn_json(sim_url, max_retries=3, retry_backoff=0.1, **CALLBACK_SECRETS,
                                                        calendar_organizer=organizer, connect_timeout=CONNECT_TIMEOUT_S,
                                                        read_timeout=READ_TIMEOUT_S),
                       "wecom_warehouse": postgres_conn_json(db_url)}  # fmt: skip
        with airflow_connections(**connections):
            sim = SimulatorAdmin(sim_url)
            receiver, watcher = Receiver(logs), Watcher(logs)
            receiver.start()
            watcher.start()
            try:
                chaos = Chaos(random.Random(args.seed), sim, db_url, logs, receiver, watcher)
                for n in range(rounds):
                    chaos.round(n)
                    print(f"round {n + 1}/{rounds}: {sum(chaos.faults.values())} faults so far, "
                          f"{len(chaos.violations)} violations", flush=True)  # fmt: skip
            finally:
                receiver.kill()
                watcher.kill()
            secrets = {**sim.credentials(), **CALLBACK_SECRETS}
            leaks, scanned = find_leaks(secrets, [*postgres_rows(db_url), *files(logs)])
            stats = sim.stats()
            with psycopg.connect(db_url) as conn:
                events = conn.execute("SELECT count(*), count(*) FILTER (WHERE processed_at IS NOT NULL)"
                                      " FROM wecom.callback_events").fetchone()  # fmt: skip
    for name, where in leaks:
        print(f"LEAK: {name} in {where}")
    figures = {
        "rounds": rounds,
        "seed": args.seed,
        "faults_injected": sum(chaos.faults.values()),
        "faults_fired_by_simulator": stats["faults_fired"],
        "faults": dict(sorted(chaos.faults.items())),
        "messages_delivered": stats["delivered"],
        "duplicates_absorbed": stats["duplicates_absorbed"],
        "gettoken_calls": stats["calls"].get("gettoken", 0),
        "callback_events_stored": events[0],
        "callback_events_processed": events[1],
        "checks": dict(chaos.checks),
        "violations": len(chaos.violations),
        "leaks": len(leaks),
        "places_scanned": scanned,
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(figures, ensure_ascii=False, indent=1))
    if chaos.violations or leaks:
        print("CHAOS FAILED")
        return 1
    print("CHAOS PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
