"""Load: a big org, a busy interview day, WeCom with latency; where does the time go?

    .venv/bin/python bench/load.py [--users 100000 --departments 5000 --interviews 20000
                                    --interviewers 5000 --latency-ms 5]

Syncs the org into a scratch warehouse, loads a day of interviews, then sends the day's digests (with
leader summaries) and a whole day of reminders (144 ten-minute windows) through the same functions the
DAGs call, against the simulator (its own process) with the given latency per API call. Prints, for each:
wall time, messages/s, and the share of the wall time spent waiting on the API (inside HTTP calls,
measured around the session's ``send``) against our own work (queries, rendering, ledger, the rest).
Goal: our own work under 20%.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from datetime import time as clock
from typing import Any

import psycopg

from wecom import warehouse
from wecom.delivery import AppMessages, MemberLimits, Sender, Summary
from wecom.directory import tasks as directory
from wecom.hooks import WeComHook
from wecom.interviews.answers import record_cards
from wecom.interviews.mapping import refresh_mapping
from wecom.interviews.render import LOCAL_TZ
from wecom.interviews.schedule import REMINDER_INTERVAL
from wecom.interviews.settings import DIGEST, REMINDERS
from wecom.interviews.tasks import plan_digest, plan_reminders
from wecom.outbox import Claimant
from wecom_dev import demo_data
from wecom_dev.days import weekday_ahead
from wecom_dev.environment import (
    airflow_connections,
    org_args,
    postgres_conn_json,
    scratch_database,
    simulator_process,
    wecom_conn_json,
)
from wecom_dev.platform import create_platform_schema
from wecom_simulator import SimulatorAdmin, generate_org

DAY = weekday_ahead(1)  # a Tuesday ahead of the machine's clock: nothing expires


class ApiClock:
    """Time spent inside HTTP round trips of one hook's session (what waiting on WeCom costs)."""

    def __init__(self, hook: WeComHook) -> None:
        self.seconds, self.calls = 0.0, 0
        session = hook.session
        send = session.send

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return send(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        session.send = timed  # type: ignore[method-assign]


def measure(label: str, work: Any, hook: WeComHook) -> dict[str, Any]:
    """``work`` returns the Summary of what it sent; its limit_wait_seconds is time slept for WeCom's
    per-member windows, which a day of reminders squeezed into a minute or two hits and a real day does not."""
    clock = ApiClock(hook)
    started = time.perf_counter()
    summary = work()
    wall = time.perf_counter() - started
    waited = summary.limit_wait_seconds
    own = wall - clock.seconds - waited
    print(f"{label}: {summary.sent:,} messages in {wall:.1f} s ({summary.sent / wall:,.0f} msg/s); "
          f"{clock.calls:,} API calls, waiting on the API {clock.seconds:.1f} s ({clock.seconds / wall:.0%}), "
          f"on per-member limits {waited:.1f} s ({waited / wall:.0%}), own work {own:.1f} s ({own / wall:.0%}, "
          f"{own / max(summary.sent, 1) * 1000:.2f} ms per message)")  # fmt: skip
    return {"wall": wall, "api": clock.seconds, "waited": waited, "own": own, "sent": summary.sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--departments", type=int, default=5_000)
    parser.add_argument("--interviews", type=int, default=20_000)
    parser.add_argument("--interviewers", type=int, default=5_000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    args = parser.parse_args()
    sim_args = org_args(args.users, args.departments, seed=1)
    with scratch_database("wecom_load") as db_url, simulator_process(*sim_args) as sim_url:
        connections = {
            "wecom_default": wecom_conn_json(sim_url),
            "wecom_warehouse": postgres_conn_json(db_url),
        }
        with airflow_connections(**connections):
            started = time.perf_counter()
            directory.migrate()
            directory.apply(directory.fetch()["snapshot_id"])
            org = generate_org(users=args.users, departments=args.departments, seed=1)
            data = demo_data.generate(org, first_day=DAY, days=1, interviewers=args.interviewers,
                                      per_day=args.interviews, seed=1)  # fmt: skip
            with psycopg.connect(db_url, autocommit=True) as conn:
                create_platform_schema(conn)
                demo_data.load(conn, data)
            print(f"Setup: {args.users:,} members synced, {len(data.interviews):,} interviews and "
                  f"{len(data.users):,} interviewers loaded in {time.perf_counter() - started:.0f} s; "
                  f"API latency {args.latency_ms:g} ms per call")  # fmt: skip
            admin = SimulatorAdmin(sim_url)
            admin.latency(args.latency_ms)
            results = run(args)
            stats = admin.stats()
    total_wall = sum(r["wall"] for r in results)
    total_own = sum(r["own"] for r in results)
    total_waited = sum(r["waited"] for r in results)
    print(f"Altogether: {sum(r['sent'] for r in results):,} messages in {total_wall:.1f} s; own work "
          f"{total_own / total_wall:.1%} of the time (goal < 20%), of the time not slept for per-member limits "
          f"{total_own / (total_wall - total_waited):.1%}; the simulator delivered {stats['delivered']:,}, "
          f"dropped {stats['silent_drops']} silently, answered 45033 {stats['concurrency_rejections']} times")  # fmt: skip


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    hook = WeComHook()
    with warehouse.connect_current() as wh:
        refresh_mapping(wh, wh)

        def digest() -> Summary:
            messages, _ = plan_digest(wh, wh, DAY, DIGEST)
            sender = Sender(AppMessages(hook), wh, Claimant("load", "digest", "send"), limits=MemberLimits())
            return sender.send(messages)

        def reminders() -> Summary:
            sender = Sender(
                AppMessages(hook), wh, Claimant("load", "reminders", "send"), limits=MemberLimits()
            )
            first = datetime.combine(DAY, clock(0, 3), LOCAL_TZ)  # the schedule's first interval of the day
            summary = Summary()
            for n in range(144):
                window_start = first + n * REMINDER_INTERVAL
                due = plan_reminders(wh, wh, window_start, window_start + REMINDER_INTERVAL, REMINDERS)
                record_cards(wh, due.cards)
                summary.add(sender.send(due.messages))
            return summary

        return [measure("Digest for the day", digest, hook), measure("A day of reminders", reminders, hook)]


if __name__ == "__main__":
    main()
