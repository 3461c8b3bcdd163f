"""wecom_directory_sync end to end: dag.test() against the simulator and a real PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT, load_dag

from wecom.directory.snapshot import DirectoryDataError, Snapshot, add_member, check_tree, normalize_member

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def dag(airflow_db):
    return load_dag(ROOT / "dags", "wecom_directory_sync")


@pytest.fixture
def sync(dag, connections):
    def run(**conf):
        return dag.test(run_conf=conf or None).state

    return run


@pytest.fixture
def db(connections):
    with psycopg.connect(connections["warehouse"], autocommit=True) as conn:
        yield conn


def one(db, query, *args):
    return db.execute(query, args).fetchone()[0]


def row_versions(db) -> set:
    """Every directory row's physical version: unchanged iff nothing wrote it."""
    tables = [
        "users",
        "departments",
        "user_departments",
        "users_history_closed",
        "departments_history_closed",
        "user_departments_history_closed",
    ]
    return {
        (table, *row)
        for table in tables
        for row in db.execute(f"SELECT xmin::text, ctid::text FROM wecom.{table}").fetchall()  # noqa: S608
    }


def last_run(db) -> dict:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1").fetchone()


def test_first_sync_loads_the_whole_org(sync, db, simulator):
    org = simulator.state.org
    assert sync() == "success"
    assert one(db, "SELECT count(*) FROM wecom.users WHERE deleted_at IS NULL") == len(org.users)
    assert one(db, "SELECT count(*) FROM wecom.departments WHERE deleted_at IS NULL") == len(org.departments)
    memberships = sum(len(u["department"]) for u in org.users.values())
    assert one(db, "SELECT count(*) FROM wecom.user_departments") == memberships
    run = last_run(db)
    assert run["status"] == "succeeded" and run["users_added"] == len(org.users)
    assert run["rows_written"] > 0 and run["finished_at"] >= run["started_at"]
    user = next(iter(org.users.values()))
    stored = db.execute(
        "SELECT name, mobile, gender, email, extattr, main_department FROM wecom.users WHERE userid = %s",
        (user["userid"],),
    ).fetchone()
    assert stored == (
        user["name"],
        user["mobile"],
        user["gender"],
        user["email"],
        user["extattr"],
        user["main_department"],
    )
    # The tree view: depth and path agree with the simulator's tree.
    for dept_id, depth, path in db.execute(
        "SELECT department_id, depth, full_path FROM wecom.department_tree"
    ):
        chain, current = [], dept_id
        while current in org.departments:
            chain.insert(0, org.departments[current]["name"])
            current = org.departments[current]["parentid"]
        assert (depth, path) == (len(chain), " / ".join(chain))
    root_total = one(db, "SELECT total_headcount FROM wecom.department_headcount WHERE department_id = 1")
    assert root_total == len(org.users)
    for dept_id, direct in db.execute(
        "SELECT department_id, direct_headcount FROM wecom.department_headcount"
    ):
        assert direct == len(org.members_of(dept_id))
    leaders = dict(db.execute("SELECT department_id, leaders FROM wecom.departments").fetchall())
    assert all(leaders[d] == org.departments[d]["department_leader"] for d in org.departments)
    assert one(db, "SELECT count(*) FROM wecom.members WHERE is_department_leader") > 0


def test_every_table_view_and_column_is_documented(sync, db):
    assert sync() == "success"
    undocumented = db.execute(
        """
        SELECT c.relname || coalesce('.' || a.attname, '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = 'wecom' AND c.relkind IN ('r', 'v')
          AND (obj_description(c.oid, 'pg_class') IS NULL
               OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
        """
    ).fetchall()
    assert undocumented == []


def test_unchanged_resync_writes_nothing(sync, db, simulator):
    assert sync() == "success"
    before = row_versions(db)
    assert sync() == "success"  # identical snapshot: recognised by its digest, nothing staged
    assert row_versions(db) == before
    run = last_run(db)
    assert run["rows_written"] == 0 and run["users_changed"] == 0 and run["status"] == "succeeded"
    assert run["users_fetched"] == len(simulator.state.org.users) and run["snapshot_digest"]
    db.execute("UPDATE wecom.sync_runs SET snapshot_digest = NULL")  # forget it: the rows are compared
    assert sync() == "success"
    assert row_versions(db) == before  # and that too writes no directory or history row
    db.execute("UPDATE wecom.sync_runs SET snapshot_digest = NULL")
    db.execute("DELETE FROM wecom_staging.applied_state")  # forget the rows too: the whole merge runs
    assert sync() == "success"
    assert row_versions(db) == before
    assert last_run(db)["rows_written"] == 0
    assert one(db, "SELECT count(*) FROM wecom_staging.users") == 0  # staging cleaned up


def test_renamed_department_and_changed_leader(sync, db, sim_admin, simulator):
    assert sync() == "success"
    member = simulator.state.org.members_of(2)[0]["userid"]
    sim_admin.mutate(
        {"op": "rename_department", "id": 2, "name": "平台研发部"},
        {"op": "set_leader", "department_id": 2, "userids": [member]},
    )
    assert sync() == "success"
    assert db.execute("SELECT name, leaders FROM wecom.departments WHERE department_id = 2").fetchone() == (
        "平台研发部",
        [member],
    )
    assert one(
        db, "SELECT is_leader FROM wecom.user_departments WHERE userid = %s AND department_id = 2", member
    )
    names = db.execute(
        "SELECT name, valid_to IS NULL FROM wecom.departments_history WHERE department_id = 2 ORDER BY valid_from"
    ).fetchall()
    assert names[-1] == ("平台研发部", True) and names[0][1] is False
    run = last_run(db)
    assert run["departments_changed"] == 1 and run["memberships_changed"] >= 1
    assert "平台研发部" in one(db, "SELECT full_path FROM wecom.department_tree WHERE department_id = 2")


def test_member_moved_is_answered_by_history(sync, db, sim_admin, simulator):
    assert sync() == "success"
    user = next(u for u in simulator.state.org.users.values() if u["department"] == [u["main_department"]])
    old, new = (
        user["main_department"],
        next(d for d in simulator.state.org.departments if d != user["main_department"]),
    )
    first_sync = one(db, "SELECT max(finished_at) FROM wecom.sync_runs")
    sim_admin.mutate({"op": "move_user", "userid": user["userid"], "departments": [new]})
    assert sync() == "success"
    now = one(db, "SELECT clock_timestamp()")
    as_of = """SELECT array_agg(department_id ORDER BY department_id) FROM wecom.user_departments_history
               WHERE userid = %s AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)"""
    assert one(db, as_of, user["userid"], first_sync, first_sync) == [old]
    assert one(db, as_of, user["userid"], now, now) == [new]
    moves = db.execute(
        "SELECT department_id, left_at IS NULL FROM wecom.membership_changes WHERE userid = %s ORDER BY joined_at",
        (user["userid"],),
    ).fetchall()
    assert moves == [(old, False), (new, True)]
    assert one(db, "SELECT main_department FROM wecom.users WHERE userid = %s", user["userid"]) == new


def test_member_left_and_came_back(sync, db, sim_admin, simulator):
    assert sync() == "success"
    user = dict(next(iter(simulator.state.org.users.values())))
    sim_admin.mutate({"op": "remove_user", "userid": user["userid"]})
    assert sync() == "success"
    assert one(db, "SELECT deleted_at IS NOT NULL FROM wecom.users WHERE userid = %s", user["userid"])
    assert one(db, "SELECT count(*) FROM wecom.user_departments WHERE userid = %s", user["userid"]) == 0
    assert last_run(db)["users_removed"] == 1
    sim_admin.mutate({"op": "add_user", "user": user})
    assert sync() == "success"
    assert one(db, "SELECT deleted_at IS NULL FROM wecom.users WHERE userid = %s", user["userid"])
    assert last_run(db)["users_restored"] == 1
    periods = db.execute(
        "SELECT valid_to IS NULL FROM wecom.users_history WHERE userid = %s ORDER BY valid_from",
        (user["userid"],),
    ).fetchall()
    assert periods == [(False,), (True,)]


def test_userid_respelled_in_another_case_keeps_one_member_and_moves_memberships(
    sync, db, sim_admin, simulator
):
    assert sync() == "success"
    user = dict(next(u for u in simulator.state.org.users.values() if u["userid"].islower()))
    old, new = user["userid"], user["userid"].upper()
    departments = sorted(user["department"])
    sim_admin.mutate(
        {"op": "remove_user", "userid": old}, {"op": "add_user", "user": {**user, "userid": new}}
    )
    assert sync() == "success"
    assert db.execute("SELECT userid FROM wecom.users WHERE lower(userid) = %s", (old,)).fetchall() == [
        (new,)
    ]
    memberships = (
        "SELECT array_agg(department_id ORDER BY department_id) FROM wecom.user_departments WHERE userid = %s"
    )
    assert one(db, memberships, new) == departments
    assert one(db, memberships, old) is None
    assert last_run(db)["users_changed"] == 1 and last_run(db)["users_removed"] == 0


def test_one_failing_department_leaves_every_table_untouched(sync, db, sim_admin, simulator):
    assert sync() == "success"
    before = row_versions(db)
    victim = next(iter(simulator.state.org.users.values()))["userid"]
    sim_admin.mutate(
        {"op": "remove_user", "userid": victim}, {"op": "rename_department", "id": 3, "name": "改名"}
    )
    sim_admin.fault("http502", "user/list", count=-1, match={"department_id": "5"})
    assert sync() == "failed"
    assert row_versions(db) == before
    assert one(db, "SELECT count(*) FROM wecom_staging.snapshots") == 0
    assert one(db, "SELECT deleted_at IS NULL FROM wecom.users WHERE userid = %s", victim)
    sim_admin.clear_faults()
    assert sync() == "success"
    assert one(db, "SELECT name FROM wecom.departments WHERE department_id = 3") == "改名"


def test_removal_guard_blocks_then_allows_on_request(sync, db, sim_admin, simulator):
    assert sync() == "success"
    before = row_versions(db)
    leaving = list(simulator.state.org.users)[: len(simulator.state.org.users) // 4]
    sim_admin.mutate(*({"op": "remove_user", "userid": u} for u in leaving))
    assert sync() == "failed"
    assert row_versions(db) == before
    run = last_run(db)
    assert run["status"] == "blocked" and "allow_mass_removal" in run["error"]
    assert sync(allow_mass_removal=True) == "success"
    assert one(db, "SELECT count(*) FROM wecom.users WHERE deleted_at IS NOT NULL") == len(leaving)


def test_analyst_role_reads_views_but_not_secrets_or_personal_fields(sync, db, connections):
    from wecom.hooks import WeComHook

    WeComHook().get_access_token()  # the private token table exists and holds a token
    assert sync() == "success"
    db.execute("SET ROLE wecom_analyst")
    try:
        assert one(db, "SELECT count(*) FROM wecom.members") > 0
        assert one(db, "SELECT count(*) FROM wecom.department_headcount") > 0
        assert one(db, "SELECT count(userid) FROM wecom.users") > 0
        for history in (
            "users_history",
            "departments_history",
            "user_departments_history",
            "membership_changes",
        ):
            assert one(db, f"SELECT count(*) FROM wecom.{history}") > 0  # noqa: S608
        for forbidden in (
            "SELECT * FROM wecom_private.access_tokens",
            "SELECT mobile FROM wecom.users",
            "SELECT email FROM wecom.users",
            "SELECT * FROM wecom.member_contacts",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(forbidden)
        db.execute("RESET ROLE")
        db.execute("SET ROLE wecom_contacts_reader")
        assert one(db, "SELECT count(mobile) FROM wecom.member_contacts") > 0
    finally:
        db.execute("RESET ROLE")


def test_new_app_without_sensitive_fields_loads_nulls(sync, db, simulator):
    simulator.state.org.new_app = True
    assert sync() == "success"
    assert one(db, "SELECT count(*) FROM wecom.users WHERE mobile IS NOT NULL OR email IS NOT NULL") == 0
    assert one(db, "SELECT count(*) FROM wecom.users") == len(simulator.state.org.users)


def test_a_full_sync_stages_only_what_changed_since_the_snapshot_it_last_applied(db_url):
    from wecom import warehouse
    from wecom.directory.apply import apply_snapshot
    from wecom.directory.merge import RemovalGuard
    from wecom.directory.staging import stage_snapshot

    def snapshot(members: range, position=lambda n: "工程师") -> Snapshot:
        result = Snapshot()
        result.departments[1] = (1, "总公司", None, 0, 0, [])
        for n in members:
            member = {"userid": f"User{n}", "name": f"成员{n}", "position": position(n), "department": [1]}
            add_member(result, normalize_member(member, 1))
        return result

    def staged(conn, snapshot_id):
        return conn.execute(
            "SELECT unchanged, complete, (SELECT count(*) FROM wecom_staging.users WHERE snapshot_id = %s)"
            " FROM wecom_staging.snapshots WHERE snapshot_id = %s",
            (snapshot_id, snapshot_id),
        ).fetchone()

    def sync(conn, snap: Snapshot, expect: tuple) -> dict:
        snapshot_id = stage_snapshot(conn, snap, chunk=7)
        assert staged(conn, snapshot_id) == expect
        result = apply_snapshot(conn, snapshot_id, RemovalGuard(allow_mass_removal=True))
        users = conn.execute("SELECT userid, position FROM wecom.users WHERE deleted_at IS NULL").fetchall()
        assert sorted(users) == sorted((u["userid"], u["position"]) for u in snap.users.values())
        assert result["users_fetched"] == len(snap.users)  # the whole snapshot, however little was staged
        return result

    with psycopg.connect(db_url, autocommit=True) as conn:
        warehouse.apply_migrations(conn)
        sync(conn, snapshot(range(50)), (False, True, 50))  # nothing applied before: everything staged
        sync(conn, snapshot(range(50)), (True, True, 0))  # identical: nothing staged
        # One changed, one gone (User0), one new (User50): the two that exist are staged, the third is in scope.
        changed = sync(
            conn, snapshot(range(1, 51), lambda n: "经理" if n == 7 else "工程师"), (False, True, 2)
        )
        assert (changed["users_changed"], changed["users_removed"], changed["users_added"]) == (1, 1, 1)
        assert changed["rows_written"] > 0 and changed["memberships_removed"] == 1
        # An events run re-read User9 and User10 since (their rows may be newer than the snapshot's): they are
        # staged again, though WeCom's rows equal the last snapshot's.
        conn.execute(
            "INSERT INTO wecom.callback_events (payload_sha256, event, change_type, userid, payload, processed_at)"
            " VALUES ('a', 'change_contact', 'update_user', 'user9', '{}', clock_timestamp()),"
            " ('b', 'change_contact', 'update_user', 'USER10', '{}', clock_timestamp())"
        )
        conn.execute(
            "UPDATE wecom.users SET position = '事件' WHERE userid = 'User9'"
        )  # what the events wrote
        conn.execute("INSERT INTO wecom.sync_runs (kind, status) VALUES ('incremental', 'succeeded')")
        sync(conn, snapshot(range(1, 51), lambda n: "经理" if n == 7 else "工程师"), (False, True, 2))
        # Everyone changed: past the share where a scoped merge pays, everything is staged.
        everyone = sync(conn, snapshot(range(1, 51), lambda n: "总监"), (False, True, 50))
        assert everyone["users_changed"] == 50
        # Events applied after a snapshot was staged: its state is not kept, so the next sync stages it all.
        snapshot_id = stage_snapshot(conn, snapshot(range(1, 51), lambda n: "总监" if n != 3 else "经理"))
        conn.execute(
            "INSERT INTO wecom.callback_events (payload_sha256, event, change_type, userid, payload, processed_at)"
            " VALUES ('c', 'change_contact', 'update_user', 'user4', '{}', clock_timestamp())"
        )
        apply_snapshot(conn, snapshot_id, RemovalGuard())
        assert conn.execute("SELECT count(*) FROM wecom_staging.applied_state").fetchone()[0] == 0
        sync(conn, snapshot(range(1, 51), lambda n: "总监"), (False, True, 50))


def test_migration_008_keeps_every_version_of_an_existing_history(db_url, monkeypatch):
    """A warehouse synced before 008 (every current row with an open twin in history) keeps every version."""
    from wecom import warehouse

    def versions(conn, view):
        return conn.execute(f"SELECT * FROM wecom.{view} ORDER BY 1, valid_from").fetchall()  # noqa: S608

    everything = warehouse.available()
    views = ("departments_history", "users_history", "user_departments_history")
    with psycopg.connect(db_url, autocommit=True) as conn:
        monkeypatch.setattr(warehouse, "available", lambda: [m for m in everything if m[0] < 8])
        warehouse.apply_migrations(conn)
        conn.execute("""
            INSERT INTO wecom.departments (department_id, name, parent_id, first_seen_at, updated_at)
            VALUES (1, '总公司', 0, '2026-01-01', '2026-01-01'), (2, '研发', 1, '2026-01-01', '2026-02-01');
            INSERT INTO wecom.departments_history
                (department_id, name, parent_id, sort_order, leaders, valid_from, valid_to, sync_run_id)
            VALUES (1, '总公司', 0, 0, '{}', '2026-01-01', NULL, 1), (2, '研发部', 1, 0, '{}', '2026-01-01', '2026-02-01', 1),
                   (2, '研发', 1, 0, '{}', '2026-02-01', NULL, 2);
            INSERT INTO wecom.users (userid, name, position, first_seen_at, updated_at)
            VALUES ('zhangsan', '张三', '经理', '2026-01-01', '2026-02-01');
            INSERT INTO wecom.users_history (userid, name, position, direct_leader, valid_from, valid_to, sync_run_id)
            VALUES ('zhangsan', '张三', '工程师', '{}', '2026-01-01', '2026-02-01', 1),
                   ('zhangsan', '张三', '经理', '{}', '2026-02-01', NULL, 2);
            INSERT INTO wecom.user_departments (userid, department_id, first_seen_at, updated_at)
            VALUES ('zhangsan', 2, '2026-02-01', '2026-02-01');
            INSERT INTO wecom.user_departments_history (userid, department_id, is_leader, valid_from, valid_to, sync_run_id)
            VALUES ('zhangsan', 1, false, '2026-01-01', '2026-02-01', 1), ('zhangsan', 2, false, '2026-02-01', NULL, 2);
        """)
        before = {v: versions(conn, v) for v in views}
        monkeypatch.setattr(warehouse, "available", lambda: everything)
        assert "008_history_closed_versions.sql" in warehouse.apply_migrations(conn)
        after = {v: versions(conn, v) for v in views}
        assert after == before and len(after["departments_history"]) == 3
        closed = [one(conn, f"SELECT count(*) FROM wecom.{v}_closed") for v in views]  # noqa: S608
        assert closed == [1, 1, 1]


def test_members_are_deduplicated_case_insensitively_with_memberships_united():
    snapshot = Snapshot()
    first = {"userid": "ZhangWei", "name": "张伟", "department": [2], "order": [5]}
    second = {"userid": "zhangwei", "name": "张伟", "department": [3], "is_leader_in_dept": [1]}
    add_member(snapshot, normalize_member(first, 2))
    add_member(snapshot, normalize_member(second, 3))
    assert list(snapshot.users) == ["zhangwei"] and snapshot.users["zhangwei"]["userid"] == "ZhangWei"
    assert snapshot.memberships == {("ZhangWei", 2): (5, False), ("ZhangWei", 3): (0, True)}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "no id"}, "not a valid userid"),
        ({"userid": "a b", "name": "x"}, "not a valid userid"),
        ({"userid": "ok", "name": 5}, "name must be a string"),
        ({"userid": "ok", "name": "x", "department": "1"}, "department must be a list"),
        ({"userid": "ok", "name": "x", "department": [True]}, "must be an integer"),
        ({"userid": "ok", "name": "x" * 5000}, "longer than"),
    ],
)
def test_malformed_members_get_a_clear_error(item, message):
    with pytest.raises(DirectoryDataError, match=message):
        normalize_member(item, 1)


def test_department_cycles_are_rejected():
    departments = {1: (1, "a", None, 0, 0, []), 2: (2, "b", None, 3, 0, []), 3: (3, "c", None, 2, 0, [])}
    with pytest.raises(DirectoryDataError, match="cycle"):
        check_tree(departments)
    check_tree({1: (1, "a", None, 0, 0, []), 7: (7, "orphan", None, 99, 0, [])})  # orphans are fine


def test_a_sync_that_changed_the_directory_emits_asset_events_that_queue_its_consumers(
    sync, db, sim_admin, simulator
):
    """The assets in the metadata DB: an event per table with the counts, and the consumer DAG queued."""

    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run(
        [*airflow, "dags", "reserialize"], check=True, capture_output=True
    )  # the consumer is known
    metadata = sqlite3.connect(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db")

    def events() -> list[tuple[str, dict]]:
        rows = metadata.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id"
        ).fetchall()
        return [(name, json.loads(extra)) for name, extra in rows]

    before = len(events())
    assert sync() == "success"
    first = events()[before:]
    assert sorted(name for name, _ in first) == ["wecom.departments", "wecom.user_departments", "wecom.users"]
    run = last_run(db)
    assert all(extra["users_added"] == run["users_added"] > 0 for _, extra in first)
    assert all(extra["sync_run_id"] == run["sync_run_id"] for _, extra in first)
    queued = metadata.execute(
        "SELECT count(*) FROM asset_dag_run_queue WHERE target_dag_id = 'wecom_directory_consumer'"
    ).fetchone()[0]
    assert queued == 3  # every asset it is scheduled on: the scheduler creates its run
    assert sync() == "success"  # unchanged: no event
    assert len(events()) == before + 3
    userid = next(iter(simulator.state.org.users))
    sim_admin.mutate({"op": "update_user", "userid": userid, "fields": {"name": "改名了"}})
    assert sync() == "success"
    changed = events()[before + 3 :]
    assert len(changed) == 3 and all(extra["users_changed"] == 1 for _, extra in changed)


def test_openlineage_events_name_the_wecom_api_read_and_the_tables_written_with_row_counts(sync, simulator):
    from conftest import OPENLINEAGE_EVENTS

    start = OPENLINEAGE_EVENTS.stat().st_size if OPENLINEAGE_EVENTS.exists() else 0
    assert sync() == "success"
    lines = OPENLINEAGE_EVENTS.read_text()[start:].splitlines()
    complete = {}
    for event in map(json.loads, lines):
        if event.get("eventType") == "COMPLETE" and "job" in event:
            complete[event["job"]["name"]] = event
    fetch = complete["wecom_directory_sync.fetch_directory"]
    inputs = {(d["namespace"], d["name"]): d for d in fetch["inputs"]}
    org = simulator.state.org
    corp = f"wecom://{simulator.state.config.corp_id}"
    assert inputs[(corp, "user/list")]["inputFacets"]["inputStatistics"]["rowCount"] == len(org.users)
    assert inputs[(corp, "department/list")]["inputFacets"]["inputStatistics"]["rowCount"] == len(
        org.departments
    )
    apply = complete["wecom_directory_sync.apply_directory"]
    outputs = {d["name"].split(".", 1)[1]: d for d in apply["outputs"]}
    assert outputs["wecom.users"]["namespace"].startswith("postgres://")
    assert outputs["wecom.users"]["outputFacets"]["outputStatistics"]["rowCount"] == len(org.users)


def test_a_member_listed_twice_with_different_data_is_never_trusted_as_unchanged():
    """Two listings that disagree (a change mid-fetch): the digest matches no earlier one, so the next
    full sync re-merges the member instead of trusting either listing."""
    from wecom.directory.state import row_state

    def fetched(*positions: str) -> dict:
        snapshot = Snapshot()
        snapshot.departments[1] = (1, "总公司", None, 0, 0, [])
        for n, position in enumerate(positions):
            member = {"userid": "Same", "name": "同一人", "position": position, "department": [1, n + 2]}
            add_member(snapshot, normalize_member(member, 1))
        return row_state(snapshot)

    assert fetched("工程师") == fetched("工程师")  # the same data, the same state
    assert fetched("工程师")["usame"] != fetched("经理")["usame"]
    assert fetched("工程师", "工程师")["usame"] != fetched("工程师", "工程师")["usame"]  # memberships differ


def test_each_copy_statement_lists_the_columns_in_the_order_the_rows_are_written():
    from wecom import sql
    from wecom.directory.staging import STAGING, STAGING_COLUMNS

    for table, columns in STAGING_COLUMNS.items():
        lines = sql.statements(STAGING)[f"copy_{table}"].splitlines()
        statement = " ".join(" ".join(line for line in lines if not line.startswith("--")).split())
        assert statement == f"COPY wecom_staging.{table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


def test_a_succeeded_run_records_every_figure_of_the_sync():
    from wecom import sql
    from wecom.directory.apply import COUNTED, RUNS

    statement = sql.statements(RUNS)["run_succeeded"]
    for figure in (*COUNTED, "rows_written", "snapshot_digest", "drift"):
        assert f"{figure} = %({figure})s" in statement


def test_a_scoped_merge_statement_is_its_whole_form_plus_the_scope_semi_join():
    """The two forms are written out in merge.sql: they may differ only in the scope test, a plain
    semi-join on wecom_staging.scope_users / scope_departments (so the plan starts from the ids in scope)."""
    from wecom import sql
    from wecom.directory.merge import APPLY_ORDER, MERGE, merge_statements

    def words(text: str) -> list[str]:
        return " ".join(line.split("--")[0] for line in text.splitlines()).replace(";", " ").split()

    statements = sql.statements(MERGE)
    scoped = [name.removesuffix("_scoped") for name in statements if name.endswith("_scoped")]
    assert set(scoped) == {
        "removal_check",
        "close_departments_history",
        "remove_departments",
        "close_users_history",
        "remove_users",
        "close_memberships_history",
        "remove_memberships",
    }
    for name in scoped:
        whole, text = statements[name], statements[f"{name}_scoped"]
        scope_lines = [line for line in text.splitlines() if "wecom_staging.scope_" in line]
        assert len(scope_lines) == 1 and scope_lines[0].strip().startswith("AND EXISTS (SELECT 1 FROM")
        assert words(text.replace(scope_lines[0], "")) == words(whole)
        assert "wecom_staging.scope_" not in whole
    for name in ("fetched", "removal_check", *(name for name, _ in APPLY_ORDER)):
        assert merge_statements(False)[name] == statements[name]
        assert merge_statements(True)[name] == statements.get(f"{name}_scoped", statements[name])
