"""Directory sync at scale, against the naive way and the physical floor, measured in one run.

    .venv/bin/python bench/directory_sync.py --users 100000 --departments 5000

Prints: full sync (fetch, load, rows/s, peak memory); unchanged re-sync (time, rows written); a 1%
change; the same rows loaded the naive way (PostgresHook.insert_rows(replace=True), which rewrites every
row each run) and the floor (raw COPY into an unindexed UNLOGGED table); and the fetch with 30 ms of API
latency at our concurrency against a sequential fetch and the latency floor.
"""

from __future__ import annotations

import argparse
import resource
import time

from airflow.providers.postgres.hooks.postgres import PostgresHook

from wecom import warehouse
from wecom.directory.apply import apply_snapshot
from wecom.directory.merge import RemovalGuard
from wecom.directory.snapshot import (
    DEPARTMENT_COLUMNS,
    MEMBERSHIP_COLUMNS,
    USER_COLUMNS,
    Snapshot,
    fetch_snapshot,
)
from wecom.directory.staging import stage_snapshot
from wecom.hooks import WeComHook
from wecom_dev.environment import (
    airflow_connections,
    org_args,
    postgres_conn_json,
    scratch_database,
    simulator_process,
    wecom_conn_json,
)
from wecom_simulator import SimulatorAdmin

# The naive loader stores lists the way PostgresHook adapts them: as JSON.
NAIVE_DDL = """
DROP SCHEMA IF EXISTS naive CASCADE;
CREATE SCHEMA naive;
CREATE TABLE naive.departments (LIKE wecom_staging.departments);
ALTER TABLE naive.departments DROP COLUMN snapshot_id, ADD PRIMARY KEY (department_id),
    ALTER COLUMN leaders TYPE jsonb USING to_jsonb(leaders);
CREATE TABLE naive.users (LIKE wecom_staging.users);
ALTER TABLE naive.users DROP COLUMN snapshot_id, ADD PRIMARY KEY (userid),
    ALTER COLUMN direct_leader TYPE jsonb USING to_jsonb(direct_leader);
CREATE TABLE naive.user_departments (LIKE wecom_staging.user_departments);
ALTER TABLE naive.user_departments DROP COLUMN snapshot_id, ADD PRIMARY KEY (userid, department_id);
"""
FLOOR_DDL = """
DROP SCHEMA IF EXISTS floor CASCADE;
CREATE SCHEMA floor;
CREATE UNLOGGED TABLE floor.departments (LIKE wecom_staging.departments);
CREATE UNLOGGED TABLE floor.users (LIKE wecom_staging.users);
CREATE UNLOGGED TABLE floor.user_departments (LIKE wecom_staging.user_departments);
ALTER TABLE floor.departments DROP COLUMN snapshot_id;
ALTER TABLE floor.users DROP COLUMN snapshot_id;
ALTER TABLE floor.user_departments DROP COLUMN snapshot_id;
"""


def rows_of(snapshot: Snapshot) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
    return {
        "departments": (DEPARTMENT_COLUMNS, list(snapshot.departments.values())),
        "users": (USER_COLUMNS, [tuple(u[c] for c in USER_COLUMNS) for u in snapshot.users.values()]),
        "user_departments": (
            MEMBERSHIP_COLUMNS,
            [(u, d, o, leader) for (u, d), (o, leader) in snapshot.memberships.items()],
        ),
    }


def load_ours(snapshot: Snapshot) -> tuple[float, dict]:
    started = time.perf_counter()
    with warehouse.connect() as conn:
        conn.autocommit = True
        snapshot_id = stage_snapshot(conn, snapshot)
        result = apply_snapshot(conn, snapshot_id, RemovalGuard(allow_mass_removal=True))
    return time.perf_counter() - started, result


def load_naive(snapshot: Snapshot) -> float:
    hook = PostgresHook(postgres_conn_id="wecom_warehouse", log_sql=False)
    keys = {
        "departments": ["department_id"],
        "users": ["userid"],
        "user_departments": ["userid", "department_id"],
    }
    started = time.perf_counter()
    for table, (columns, rows) in rows_of(snapshot).items():
        hook.insert_rows(
            f"naive.{table}", rows, target_fields=list(columns), replace=True, replace_index=keys[table],
            commit_every=5000,
        )  # fmt: skip
    return time.perf_counter() - started


def load_floor(snapshot: Snapshot) -> float:
    with warehouse.connect() as conn:
        conn.execute(FLOOR_DDL)
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            for table, (columns, rows) in rows_of(snapshot).items():
                with cur.copy(f"COPY floor.{table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def fetch(concurrency: int = 4) -> tuple[float, Snapshot]:
    started = time.perf_counter()
    snapshot = fetch_snapshot(WeComHook(), concurrency=concurrency)
    return time.perf_counter() - started, snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--departments", type=int, default=5_000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    sim_args = org_args(args.users, args.departments, seed=11)
    with scratch_database() as db_url, simulator_process(*sim_args) as sim_url:
        admin = SimulatorAdmin(sim_url)
        with airflow_connections(
            wecom_default=wecom_conn_json(sim_url, read_timeout=120),
            wecom_warehouse=postgres_conn_json(db_url),
        ):
            with warehouse.connect() as conn:
                warehouse.apply_migrations(conn)
                conn.execute(NAIVE_DDL)

            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            fetch_s, snapshot = fetch(args.concurrency)
            cold_s, cold = load_ours(snapshot)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows = sum(len(r) for _, r in rows_of(snapshot).values())
            naive_cold_s = load_naive(snapshot)
            floor_s = load_floor(snapshot)

            refetch_s, same = fetch(args.concurrency)
            resync_s, resync = load_ours(same)  # recognised by the snapshot's digest
            with warehouse.connect() as conn:
                conn.execute(
                    "UPDATE wecom.sync_runs SET snapshot_digest = NULL"
                )  # force the whole merge path
                conn.execute("DELETE FROM wecom_staging.applied_state")
            merge_s, merged = load_ours(same)
            naive_resync_s = load_naive(same)

            victims = list(same.users.values())[: max(1, len(same.users) // 100)]

            def change_one_percent(position: str) -> Snapshot:
                for start in range(0, len(victims), 500):
                    admin.mutate(*({"op": "update_user", "userid": u["userid"], "fields": {"position": position}}
                                   for u in victims[start : start + 500]))  # fmt: skip
                return fetch(args.concurrency)[1]

            changed_snapshot = change_one_percent("已调岗")
            with warehouse.connect() as conn:  # staged whole, as without the last snapshot's row state
                conn.execute("UPDATE wecom.sync_runs SET snapshot_digest = NULL")
                conn.execute("DELETE FROM wecom_staging.applied_state")
            whole_changed_s, whole_changed = load_ours(changed_snapshot)
            next_day = change_one_percent("再调岗")  # the same rows again, as the next daily sync meets them
            with warehouse.connect() as conn:  # by then autovacuum has analyzed what the loads wrote
                conn.autocommit = True
                conn.execute("ANALYZE wecom.departments, wecom.users, wecom.user_departments")
            changed_s, changed = load_ours(next_day)

            calls = 1 + len(snapshot.departments)
            admin.latency(args.latency_ms)
            admin.reset()
            admin.latency(args.latency_ms)
            latency_s, _ = fetch(args.concurrency)
            stats = admin.stats()
            sequential_s, _ = fetch(1)
            admin.latency(0)
            floor_latency_s = calls * args.latency_ms / 1000 / args.concurrency

    print(f"org: {len(snapshot.users):,} members, {len(snapshot.departments):,} departments, "
          f"{len(snapshot.memberships):,} memberships ({rows:,} rows)")  # fmt: skip
    print(
        f"peak memory of this process: {peak_mb:,.0f} MiB (was {rss_before / 1024:,.0f} MiB before the fetch)"
    )
    print()
    print(f"{'':38}{'seconds':>10}{'rows written':>15}")
    print(f"{'fetch (no latency, concurrency ' + str(args.concurrency) + ')':38}{fetch_s:>10.2f}")
    print(f"{'cold load: ours (COPY + merge)':38}{cold_s:>10.2f}{cold['rows_written']:>15,}"
          f"   {rows / cold_s:,.0f} rows/s")  # fmt: skip
    print(f"{'cold load: naive insert_rows(replace)':38}{naive_cold_s:>10.2f}{rows:>15,}")
    print(f"{'cold load: floor (raw COPY, unlogged)':38}{floor_s:>10.2f}{rows:>15,}")
    print(
        f"{'unchanged re-sync: ours':38}{resync_s:>10.2f}{resync['rows_written']:>15,}   (fetch {refetch_s:.2f}s)"
    )
    print(f"{'unchanged re-sync: naive':38}{naive_resync_s:>10.2f}{rows:>15,}")
    print(f"{'1% of members changed: ours':38}{changed_s:>10.2f}{changed['rows_written']:>15,}"
          f"   ({changed['users_changed']:,} members changed; tables analyzed, as autovacuum does)")  # fmt: skip
    print(f"{'1% changed, staged whole':38}{whole_changed_s:>10.2f}{whole_changed['rows_written']:>15,}"
          "   (without the last snapshot's row state)")  # fmt: skip
    print()
    print(f"cold load vs naive: {naive_cold_s / cold_s:.2f}x faster (goal >= 2.5x)")
    print(f"cold load vs floor: {cold_s / floor_s:.2f}x the floor (goal <= 8x)")
    print(f"1% change vs cold load: {changed_s / cold_s:.2f}x the time (goal <= 0.5x); staged whole it takes "
          f"{whole_changed_s / cold_s:.2f}x")  # fmt: skip
    print(f"unchanged re-sync vs naive: {naive_resync_s / resync_s:.2f}x faster (goal >= 4x), "
          f"{resync['rows_written']} rows written (goal 0); without the digest shortcut "
          f"{naive_resync_s / merge_s:.2f}x, {merged['rows_written']} rows written")  # fmt: skip
    print()
    print(f"fetch with {args.latency_ms:.0f} ms latency, {calls:,} calls:")
    print(f"  concurrency {args.concurrency}: {latency_s:.2f}s   sequential: {sequential_s:.2f}s "
          f"({sequential_s / latency_s:.2f}x slower)")  # fmt: skip
    print(f"  latency floor (calls x latency / concurrency): {floor_latency_s:.2f}s -> ours is "
          f"{latency_s / floor_latency_s:.2f}x the floor (goal <= 1.3x)")  # fmt: skip
    print(f"  API calls during the concurrent fetch: {stats['calls']}; "
          f"45033 (too much concurrency) answers: {stats['concurrency_rejections']}")  # fmt: skip


if __name__ == "__main__":
    main()
