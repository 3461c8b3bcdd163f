"""Cost proportional to change: 1,000 upcoming interviews, 1% of them changed, WeCom with latency L per call.

    .venv/bin/python bench/changes.py [--users 300 --interviews 1000 --changed 10 --rounds 3 --latency-ms 20]

Setup (not timed): the org synced from the simulator, two interviews per half-hour slot (panels of one or two
mapped interviewers), all announced and in the app's calendar, reminder cards outstanding on every interview
to be changed and on its unchanged slot-mate. Then, side by side in one run: ``--rounds`` times 1% changed
(cancelled, moved, a panelist swapped or added) and ours run (``track_changes`` + ``sync_calendar``); ours
with nothing changed; naive (every schedule updated); and the physical floor of a call, measured: bare
round trips to the simulator under the same latency (requests, keep-alive, an endpoint that does nothing),
so a run's floor is its calls times that. Calls: the simulator's counters, diffed, attributed to
interviews by what changed in WeCom (schedules, what each card shows, messages by msgid -> ledger key).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import random
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests
from airflow.providers.postgres.hooks.postgres import PostgresHook

from wecom import client, warehouse
from wecom.directory import tasks as directory
from wecom.interviews import tasks
from wecom.interviews.settings import ReminderSettings
from wecom.outbox import Claimant
from wecom_dev import demo_data
from wecom_dev import environment as env
from wecom_dev.platform import create_platform_schema
from wecom_simulator import SimulatorAdmin

SLOT, LEAD = timedelta(minutes=30), timedelta(minutes=33)  # a reminder window holds start - 30 minutes
SETTINGS = ReminderSettings(feedback_after_hours=10_000)
KINDS = ("cancelled",) * 3 + ("moved",) * 5 + ("panel swap", "panel add")
PATHS = ("message/send", "message/update_template_card", "oa/schedule/update", "oa/schedule/del", "gettoken")
TOKEN, AES_KEY = "benchChangesToken", "bEnChChAnGeS0123456789abcdefghijklmnopqrstu"
SECRETS = {"callback_token": TOKEN, "callback_aes_key": AES_KEY}
PANEL = "interview.interview_interviewers"
IDLE, WRITES = psycopg.pq.TransactionStatus.IDLE, ("INSERT", "UPDATE", "DELETE", "WITH")


class Clock:
    """Where a run's time goes: inside WeCom's HTTP calls, SQL statements (a write outside a transaction is
    a commit of its own), opening connections; the rest is our Python."""

    def __init__(self) -> None:
        self.count, self.statements = Counter(), Counter()
        self.wrap(client, "_send", lambda *a: "api")
        self.wrap(psycopg.Cursor, "execute", self.statement)
        self.wrap(psycopg.Cursor, "executemany", self.statement)
        self.wrap(PostgresHook, "get_conn", lambda *a: "connect")

    def statement(self, cur: Any, query: Any, *args: Any) -> str:
        words = " ".join(s for s in str(query).strip().splitlines() if not s.startswith("--")).split()
        self.count["commits"] += cur.connection.info.transaction_status == IDLE and words[0] in WRITES
        return "sql:" + " ".join(words)[:80]

    def wrap(self, owner: Any, name: str, bucket: Any) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            key, started = bucket(*args), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.statements[key] += time.perf_counter() - started
                self.count[key[:3]] += 1

        setattr(owner, name, timed)


def world(admin: SimulatorAdmin, db_url: str, n: int, rng: random.Random) -> tuple[int, dict, dict]:
    """The platform's users (every member, by email) and ``n`` interviews; their starts and panels."""
    members = [u for u in admin.org()["users"] if u.get("status") == 1 and u.get("email")]
    users = [(i, m["name"], m["email"], None) for i, m in enumerate(members, 1)]
    base = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    starts = {i: base + (i - 1) // 2 * SLOT for i in range(1, n + 1)}
    panels = {i: rng.sample(range(1, len(users) + 1), k=rng.choice((1, 2))) for i in starts}
    now, room = datetime.now(UTC), "https://www.showmebug.com/pads/"
    rows = [
        (i, "后端", f"候选人{i}", s, s + 2 * SLOT, "scheduled", f"{room}{i}", now, now)
        for i, s in starts.items()
    ]
    with psycopg.connect(db_url, autocommit=True) as pg:
        create_platform_schema(pg)
        demo_data.load(pg, demo_data.DemoData(users, rows, [(i, u) for i, p in panels.items() for u in p]))
    return len(users), starts, panels


def change(db_url: str, chosen: list[int], panels: dict, users: int, rng: random.Random) -> dict[int, str]:
    kinds = dict(zip(chosen, KINDS * (len(chosen) // len(KINDS) + 1), strict=False))
    moved = "start_at = start_at + interval '2 hours', end_at = end_at + interval '2 hours'"
    with psycopg.connect(db_url, autocommit=True) as pg:
        for iid, kind in kinds.items():
            if kind in ("cancelled", "moved"):
                update = "status = 'cancelled'" if kind == "cancelled" else moved
                pg.execute(f"UPDATE interview.interviews SET {update} WHERE id = %s", (iid,))  # noqa: S608
                continue
            new = rng.choice([u for u in range(1, users + 1) if u not in panels[iid]])
            gone = panels[iid][0] if kind == "panel swap" else None
            pg.execute(f"DELETE FROM {PANEL} WHERE interview_id = %s AND user_id = %s", (iid, gone))  # noqa: S608
            pg.execute(f"INSERT INTO {PANEL} (interview_id, user_id) VALUES (%s, %s)", (iid, new))  # noqa: S608
    return kinds


def snapshot(admin: SimulatorAdmin) -> dict[str, Any]:
    schedules = {s["schedule_id"]: s for s in admin.schedules()}
    return {"schedules": schedules, "cards": {c["task_id"]: c["shown"] for c in admin.cards()},
            "msgids": {m["msgid"] for m in admin.messages()}}  # fmt: skip


def touched(before: dict, after: dict, wh: Any) -> dict[int, Counter[str]]:
    """Calls per interview, read off what changed in WeCom."""
    per: dict[int, Counter[str]] = defaultdict(Counter)
    for sid, s in after["schedules"].items():
        old = before["schedules"].get(sid)
        if old and (old["sequence"], old["status"]) != (s["sequence"], s["status"]):
            iid = int(s["description"].split("面试编号 Interview no.: ")[1].split("\n")[0])
            per[iid]["oa/schedule/del" if s["status"] == 1 else "oa/schedule/update"] += 1
    cards = dict(wh.execute("SELECT task_id, interview_id FROM wecom.reminder_cards").fetchall())
    for task_id, shown in after["cards"].items():
        for userid, now in shown.items():
            if before["cards"].get(task_id, {}).get(userid) != now:
                per[cards[task_id]]["message/update_template_card"] += 1
    sent = sorted(after["msgids"] - before["msgids"])
    query = "SELECT DISTINCT msgid, dedup_key FROM wecom.message_log WHERE msgid = ANY(%s)"
    for _, key in wh.execute(query, (sent,)):  # one message/send may reach several members
        per[int(key.split(":")[1]) if key.startswith("change:") else -1]["message/send"] += 1
    return per


def measure(admin: SimulatorAdmin, clock: Clock, work: Any) -> dict[str, Any]:
    clock.count.clear()
    clock.statements.clear()
    before, started = admin.stats()["calls"], time.perf_counter()
    work()
    wall, after = time.perf_counter() - started, admin.stats()["calls"]
    calls = {p: after[p] - before.get(p, 0) for p in after if after[p] != before.get(p, 0)}
    spent, top = Counter(), [(k[4:], v) for k, v in clock.statements.most_common() if k[:3] == "sql"][:4]
    for key, seconds in clock.statements.items():
        spent[key[:3]] += seconds
    return {"wall": wall, "calls": calls, "n": sum(calls.values()), "spent": spent, "count": Counter(clock.count),
            "top": top}  # fmt: skip


def bare_call(sim_url: str, n: int = 60) -> float:
    """The floor of one call: the median of ``n`` bare round trips (a pooled connection, a small JSON body, a
    path WeCom's stand-in answers at once after its latency), seconds."""
    took = []
    with requests.Session() as session:
        for _ in range(n):
            started = time.perf_counter()
            session.post(
                f"{sim_url}/cgi-bin/bench/floor", json={"touser": "x"}, timeout=10
            ).raise_for_status()
            took.append(time.perf_counter() - started)
    return statistics.median(took)


def ours(since: datetime, run: str) -> None:
    tasks.track_changes(since, Claimant("bench_changes", run, "track_interview_changes"), SETTINGS)
    tasks.sync_calendar(SETTINGS)


def naive() -> None:
    """Every schedule updated: our own sync, told that every calendar entry is behind."""
    with warehouse.connect_current() as wh:
        wh.execute("UPDATE wecom.calendar_entries SET version = NULL WHERE state = 'synced'")
    tasks.sync_calendar(SETTINGS)


def setup(admin: SimulatorAdmin, db_url: str, wh: Any, args: argparse.Namespace, rng: random.Random) -> tuple:
    """The org, the interviews announced and in the calendar, the rounds' interviews and their cards."""
    started = time.perf_counter()
    directory.migrate()
    directory.apply(directory.fetch()["snapshot_id"])
    users, starts, panels = world(admin, db_url, args.interviews, rng)
    since = datetime.now(UTC)
    tasks.track_changes(since, Claimant("bench_changes", "setup", "track"), SETTINGS)
    while tasks.sync_calendar(SETTINGS).get("calendar_added"):
        pass
    step = args.interviews // args.changed  # a round's 1%: one every step, each in a slot of its own
    rounds = [[step // 2 + 2 * r + step * k for k in range(args.changed)] for r in range(args.rounds + 1)]
    for first, last in zip(rounds[0], rounds[-1], strict=True):  # the k-th of every round: adjacent slots
        end = starts[last] - LEAD + timedelta(minutes=10)
        tasks.send_reminders(starts[first] - LEAD, end, Claimant("bench", f"r{first}", "remind"), SETTINGS)
    cards = wh.execute("SELECT count(*), count(DISTINCT interview_id) FROM wecom.reminder_cards").fetchone()
    sizes, days = Counter(len(p) for p in panels.values()), (max(starts.values()) - since).days + 1
    print(f"Setup ({time.perf_counter() - started:.0f} s, not timed): {users} members mapped, {args.interviews:,} "
          f"interviews in the next {days} days (panels: {sizes[1]} of one, {sizes[2]} of two), all announced "
          f"and in the calendar; {cards[0]} reminder cards outstanding on {cards[1]} interviews (those to change "
          f"and their slot-mates). A round changes {args.changed} ({args.changed / args.interviews:.0%}): "
          f"{dict(Counter(KINDS[: args.changed]))}; L = {args.latency_ms:g} ms a call; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    return users, panels, since, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name, default in (("users", 300), ("interviews", 1000), ("changed", 10), ("rounds", 3)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    logging.getLogger("wecom").setLevel(logging.WARNING)
    rng, latency = random.Random(1), args.latency_ms / 1000
    with (
        env.scratch_database("wecom_changes") as db_url,
        env.simulator_process(*env.org_args(args.users, 20)) as sim_url,
    ):
        admin = SimulatorAdmin(sim_url)
        wecom = env.wecom_conn_json(sim_url, calendar_organizer=admin.org()["users"][0]["userid"], **SECRETS)
        # Button cards need the app's callback URL (else 43012): the real receiver, in its own process.
        with (
            env.callback_receiver(sim_url, db_url, **SECRETS) as callback_url,
            env.airflow_connections(wecom_default=wecom, wecom_warehouse=env.postgres_conn_json(db_url)),
            warehouse.connect_current() as wh,
        ):
            admin.send_callbacks(callback_url, TOKEN, AES_KEY)
            users, panels, since, rounds = setup(admin, db_url, wh, args, rng)
            clock, results = Clock(), []
            admin.latency(args.latency_ms)
            for r, chosen in enumerate(rounds[:-1], 1):
                kinds, before = change(db_url, chosen, panels, users, rng), snapshot(admin)
                result = measure(admin, clock, lambda r=r: ours(since, f"round-{r}"))
                results.append(result | {"kinds": kinds, "per": touched(before, snapshot(admin), wh)})
            again, lazy = measure(admin, clock, lambda: ours(since, "again")), measure(admin, clock, naive)
            bare = bare_call(sim_url)
            profiler = None
            if statistics.median(r["wall"] / (r["n"] * bare) for r in results) > 1.3:
                change(db_url, rounds[-1], panels, users, rng)
                profiler = cProfile.Profile()
                measure(admin, clock, lambda: profiler.runcall(ours, since, "profiled"))
            admin.latency(0)
    report(results, again, lazy, panels, latency, bare, profiler)


def report(
    results: list, again: dict, lazy: dict, panels: dict, latency: float, bare: float, profiler: Any
) -> None:
    print(
        f"The floor of a call, measured: {bare * 1000:.1f} ms a bare round trip (L = {latency * 1000:g} ms)"
    )
    print(f"{'run':<32}{'calls':>6}{'wall s':>8}{'floor s':>9}{'/floor':>8}{'/n*L':>7}  where the time went")
    runs = [(f"ours, round {i}: 1% changed", r) for i, r in enumerate(results, 1)]
    for label, r in [*runs, ("ours again: nothing changed", again), ("naive: update every schedule", lazy)]:
        spent, count = r["spent"], r["count"]
        ratio = f"{r['wall'] / (r['n'] * bare):.2f}x" if r["n"] else "-"
        of_l = f"{r['wall'] / (r['n'] * latency):.2f}x" if r["n"] else "-"
        over = (
            f" ({(spent['api'] / r['n'] - bare) * 1000:+.1f} ms a call over the bare one)" if r["n"] else ""
        )
        print(f"{label:<32}{r['n']:>6}{r['wall']:>8.2f}{r['n'] * bare:>9.2f}{ratio:>8}{of_l:>7}  API {spent['api']:.2f} s"
              f"{over}, SQL {spent['sql']:.2f} s ({count['sql']} statements, "
              f"{count['commits']} commits), connect {spent['con']:.2f} s, rest (our Python) "
              f"{r['wall'] - sum(spent.values()):.2f} s")  # fmt: skip
    calls, ratios = Counter(), [r["wall"] / (r["n"] * bare) for r in results]
    for r in results:
        calls.update(r["calls"])
    print(f"ours / naive: {statistics.median(r['wall'] for r in results) / lazy['wall']:.3f}x the time, "
          f"{statistics.median(r['n'] for r in results) / lazy['n']:.3f}x the calls. Calls in the {len(results)} "
          f"rounds: " + ", ".join(f"{p} {calls.pop(p, 0)}" for p in PATHS) + f"; other paths {dict(calls)}")  # fmt: skip
    by_kind, totals, others = defaultdict(list), [], {}
    for r in results:
        others |= {i: dict(c) for i, c in r["per"].items() if i not in r["kinds"]}
        for iid, kind in r["kinds"].items():
            by_kind[kind, len(panels[iid])].append(r["per"][iid])
            totals.append((sum(r["per"][iid].values()), iid, kind, len(panels[iid])))
    print(f"Calls per changed interview ({len(totals)} in the rounds, each with its cards outstanding):")
    print(f"  {'change':<11}{'panel':>6}{'n':>4}{'send':>6}{'card':>6}{'update':>8}{'del':>5}{'total':>7}")
    for (kind, size), found in sorted(by_kind.items()):
        cells = ["/".join(map(str, sorted({c[p] for c in found}))) for p in PATHS[:4]]
        total = "/".join(map(str, sorted({sum(c.values()) for c in found})))
        row = f"{cells[0]:>6}{cells[1]:>6}{cells[2]:>8}{cells[3]:>5}{total:>7}"
        print(f"  {kind:<11}{size:>6}{len(found):>4}{row}")
    attributed, counted = (
        sum(t[0] for t in totals),
        sum(r["n"] - r["calls"].get("gettoken", 0) for r in results),
    )
    worst, ratio = max(totals), statistics.median(ratios)
    verdicts = [
        (worst[0] <= 4, f"<= 4 calls per changed interview: max {worst[0]} (interview {worst[1]}, {worst[2]}, "
         f"panel of {worst[3]}), mean {statistics.mean(t[0] for t in totals):.1f}"),
        (not others and attributed == counted and not again["n"], f"0 calls for unchanged interviews: "
         f"{attributed} of the {counted} calls counted are the changed interviews', other interviews touched: "
         f"{len(others)}{f' {others}' if others else ''}; with nothing changed: {again['n']} calls"),
        (ratio <= 1.3, f"<= 1.3x the latency floor: {ratio:.2f}x the calls' bare round trips (median of "
         f"{', '.join(f'{x:.2f}x' for x in ratios)}); {statistics.median(r['wall'] / (r['n'] * latency) for r in results):.2f}x n*L"),
    ]  # fmt: skip
    for ok, line in verdicts:
        print(f"  {'MET   ' if ok else 'MISSED'} {line}")
    if profiler is None:
        return
    mid = sorted(results, key=lambda r: r["wall"])[len(results) // 2]
    print(f"Over 1.3x: the slowest SQL of the median round ({mid['count']['commits']} of its {mid['count']['sql']} "
          "statements are writes outside a transaction, each a commit of its own):")  # fmt: skip
    for statement, seconds in mid["top"]:
        print(f"  {seconds * 1000:6.1f} ms  {statement}")
    print("cProfile of one more 1% (also carded), by own time:")
    stats = sorted(pstats.Stats(profiler).stats.items(), key=lambda s: -s[1][2])  # type: ignore[attr-defined]
    for (path, line, func), (_, n, own, cumulative, _) in stats[:8]:
        print(f"  {own:6.3f} s own {cumulative:6.3f} s cum {n:>6}x  {path.split('/')[-1]}:{line}({func})")


if __name__ == "__main__":
    main()
