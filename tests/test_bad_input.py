"""Malformed and hostile input, generated: each gets a clear error or a correct result, nothing else."""

from __future__ import annotations

import json

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wecom import warehouse
from wecom.directory.apply import apply_snapshot
from wecom.directory.merge import RemovalGuard
from wecom.directory.snapshot import (
    DirectoryDataError,
    Snapshot,
    add_member,
    normalize_department,
    normalize_member,
)
from wecom.directory.staging import stage_snapshot
from wecom.errors import SettingsError, WeComTransientError, read_answer
from wecom.interviews.render import md, url

HOSTILE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300
) | st.sampled_from(
    [
        "'; DROP TABLE wecom.users; --",
        "\x00\x01\x1b[31m",
        "😀" * 50,
        "<script>alert(1)</script>",
        "**x**[a](b)",
        "\\N",
        "\t|\n\r",
        "%(snapshot_id)s",
        "$$; SELECT 1; $$",
    ]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
USER_FIELDS = (
    "userid name department order is_leader_in_dept position status mobile gender email main_department"
    " direct_leader extattr alias unknown_field"
).split()


@given(
    status=st.sampled_from([200, 200, 200, 429, 500, 502, 504]),
    content=st.binary(max_size=300) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
)
def test_any_http_answer_is_a_wecom_body_or_a_transient_error(status, content):
    try:
        result = read_answer(status, content, "user/list")
    except WeComTransientError as exc:
        assert exc.errcode == -1
    else:
        assert status == 200 and type(result.get("errcode", 0)) is int


@given(status=st.integers(min_value=300, max_value=428))
def test_client_errors_are_configuration_errors(status):
    try:
        read_answer(status, b"", "gettoken")
    except SettingsError as exc:
        assert "API base URL" in str(exc)
    else:
        raise AssertionError("a 3xx/4xx answer must fail as configuration")


@given(
    item=st.dictionaries(st.sampled_from(USER_FIELDS), JSON_VALUES, max_size=10), listed_in=st.integers(1, 99)
)
def test_any_member_item_is_normalised_or_refused_clearly(item, listed_in):
    try:
        user, memberships = normalize_member(item, listed_in)
    except DirectoryDataError as exc:
        assert str(exc)
        return
    assert 1 <= len(user["userid"].encode()) <= 64 and "\x00" not in user["name"]
    assert any(dept == listed_in for dept, _, _ in memberships)
    json.loads(user["extra"])


@given(
    item=st.dictionaries(
        st.sampled_from(["id", "name", "name_en", "parentid", "order", "department_leader"]),
        JSON_VALUES,
        max_size=6,
    )
)
def test_any_department_item_is_normalised_or_refused_clearly(item):
    try:
        department = normalize_department(item)
    except DirectoryDataError as exc:
        assert str(exc)
        return
    assert department[0] >= 1 and department[1]


@given(text=HOSTILE_TEXT)
def test_template_values_cannot_form_markup_or_links(text):
    safe = md(text)
    assert not set(safe) & set("*_[]()<>#`\\|~\n\r")
    assert url(text) == "#" or url(text).startswith(("http://", "https://"))


MEMBERS = st.lists(
    st.fixed_dictionaries(
        {
            "userid": st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True),
            "name": HOSTILE_TEXT.filter(str.strip),
            "position": HOSTILE_TEXT,
            "alias": HOSTILE_TEXT,
            "department": st.just([1]),
        }
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=MEMBERS)
def test_hostile_members_load_exactly_and_reload_writes_nothing(connections, members):
    snapshot = Snapshot()
    snapshot.departments[1] = normalize_department({"id": 1, "name": "根 '; --", "parentid": 0})
    for raw in members:  # duplicates differing in case collapse into one member
        try:
            add_member(snapshot, normalize_member(raw, 1))
        except DirectoryDataError:
            return
    with warehouse.connect() as conn:
        warehouse.apply_migrations(conn)
        conn.execute(
            "TRUNCATE wecom.users, wecom.departments, wecom.users_history_closed,"
            " wecom.departments_history_closed, wecom.user_departments_history_closed, wecom.sync_runs"
            " CASCADE"
        )
        apply_snapshot(conn, stage_snapshot(conn, snapshot), RemovalGuard(allow_mass_removal=True))
        rows = conn.execute("SELECT lower(userid), name, position, alias FROM wecom.users").fetchall()
        expected = {(k, u["name"], u["position"], u["alias"]) for k, u in snapshot.users.items()}
        assert set(rows) == expected
        conn.execute("UPDATE wecom.sync_runs SET snapshot_digest = NULL")  # take the whole merge path
        conn.execute("DELETE FROM wecom_staging.applied_state")
        again = apply_snapshot(conn, stage_snapshot(conn, snapshot), RemovalGuard())
        assert again["rows_written"] == 0
    with psycopg.connect(connections["warehouse"]) as check:
        assert check.execute("SELECT count(*) FROM wecom.users").fetchone()[0] == len(snapshot.users)
