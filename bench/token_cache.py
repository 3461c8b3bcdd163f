"""32 processes ask for a token at once on a cold cache: how many gettoken calls does WeCom see?

The shared PostgreSQL store (single-flight: advisory lock, then re-check) against what a
per-process in-memory cache does (what the first version of this integration had).

    .venv/bin/python bench/token_cache.py [--processes 32]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import airflow.providers.postgres.hooks.postgres  # noqa: F401 - imported once, before the fork

from wecom.hooks import WeComHook
from wecom_dev.environment import (
    airflow_connections,
    postgres_conn_json,
    scratch_database,
    simulator_process,
    wecom_conn_json,
)
from wecom_simulator import SimulatorAdmin


def _worker(conn_id: str, barrier, queue) -> None:
    hook = WeComHook(conn_id)
    _ = hook.settings  # read the connection before the start line, so only the token race is timed
    barrier.wait()
    started = time.perf_counter()
    token = hook.get_access_token()
    queue.put((token, time.perf_counter() - started))


def race(conn_id: str, processes: int) -> tuple[int, float]:
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(conn_id, barrier, queue)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in range(processes)]
    for worker in workers:
        worker.join(60)
    return len({token for token, _ in results}), max(seconds for _, seconds in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=32)
    args = parser.parse_args()
    with scratch_database() as db_url, simulator_process("--users", "10", "--departments", "2") as sim_url:
        admin = SimulatorAdmin(sim_url)
        with airflow_connections(
            wecom_shared=wecom_conn_json(sim_url, token_store="postgres"),
            wecom_memory=wecom_conn_json(sim_url, token_store="memory"),
            wecom_warehouse=postgres_conn_json(db_url),
        ):
            rows = []
            for label, conn_id in (
                ("shared PostgreSQL store", "wecom_shared"),
                ("per-process memory", "wecom_memory"),
            ):
                admin.reset()
                distinct, slowest = race(conn_id, args.processes)
                rows.append((label, admin.calls("gettoken"), distinct, slowest))
    print(f"{args.processes} processes, cold cache, all asking at once")
    print(f"{'token cache':<26}{'gettoken calls':>16}{'distinct tokens':>17}{'slowest wait':>14}")
    for label, calls, distinct, slowest in rows:
        print(f"{label:<26}{calls:>16}{distinct:>17}{slowest * 1000:>12.1f}ms")
    shared, memory = rows[0][1], rows[1][1]
    print(f"gettoken calls saved: {memory}x -> {shared}x (goal for the shared store: 1)")


if __name__ == "__main__":
    main()
