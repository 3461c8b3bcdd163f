"""WeComHook against the simulator over real HTTP and a real PostgreSQL token store."""

from __future__ import annotations

import logging
import multiprocessing

import psycopg
import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import wecom_conn

from wecom.errors import (
    SettingsError,
    WeComCallerError,
    WeComConfigError,
    WeComItemError,
    WeComRateLimitedError,
    WeComTokenError,
    WeComTransientError,
)
from wecom.hooks import WeComHook
from wecom.token_store import MemoryTokenStore, PostgresTokenStore, cache_key


def test_building_the_hook_does_no_io(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WECOM_DEFAULT", raising=False)
    hook = WeComHook(wecom_conn_id="does_not_exist")  # no connection lookup, no HTTP, no DB
    assert hook.wecom_conn_id == "does_not_exist"
    with pytest.raises(Exception, match="does_not_exist"):
        hook.get_access_token()


def test_token_is_cached_across_calls_and_hooks(connections, sim_admin):
    first = WeComHook()
    first.list_departments()
    first.list_departments()
    second = WeComHook()  # a new hook in the same process reads the shared store
    assert second.get_access_token() == first.get_access_token()
    assert sim_admin.calls("gettoken") == 1
    assert sim_admin.calls("department/list") == 2


def test_token_store_table_is_created_in_an_empty_database(connections):
    WeComHook().get_access_token()
    with psycopg.connect(connections["warehouse"]) as conn:
        rows = conn.execute(
            "SELECT cache_key, expires_at > now() FROM wecom_private.access_tokens"
        ).fetchall()
    assert len(rows) == 1
    key, fresh = rows[0]
    assert fresh and key.startswith("wwsimcorp0001:") and "secret" not in key


def test_expiry_margin_refreshes_early(simulator, sim_admin, monkeypatch):
    simulator.state.config.token_lifetime = 200  # shorter than the margin: never considered fresh
    store = MemoryTokenStore()
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_MARGIN", wecom_conn(simulator.url, token_margin=300))
    hook = WeComHook("wecom_margin", token_store=store)
    hook.get_access_token()
    hook.get_access_token()
    assert sim_admin.calls("gettoken") == 2
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_MARGIN", wecom_conn(simulator.url, token_margin=60))
    relaxed = WeComHook("wecom_margin", token_store=store)
    relaxed.get_access_token()
    relaxed.get_access_token()
    assert sim_admin.calls("gettoken") == 2  # the 200 s token is fresh enough for a 60 s margin


def _cold_start(barrier, queue):
    barrier.wait()
    queue.put(WeComHook().get_access_token())


def test_concurrent_cold_processes_make_one_gettoken_call(connections, sim_admin):
    processes = 8
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_cold_start, args=(barrier, queue)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    tokens = {queue.get(timeout=5) for _ in range(processes)}
    assert len(tokens) == 1
    assert sim_admin.calls("gettoken") == 1


def test_revoked_token_is_refreshed_once_and_the_call_succeeds(connections, sim_admin):
    hook = WeComHook()
    before = hook.get_access_token()
    sim_admin.revoke_tokens()
    assert hook.list_departments()
    assert hook.get_access_token() != before
    assert sim_admin.calls("gettoken") == 2
    assert sim_admin.calls("department/list") == 2


@pytest.mark.parametrize("errcode", [40014, 42001, 41001])
def test_a_second_token_error_fails(connections, sim_admin, errcode):
    sim_admin.fault("errcode", "department/list", count=2, errcode=errcode)
    with pytest.raises(WeComTokenError) as info:
        WeComHook().list_departments()
    assert info.value.errcode == errcode
    assert sim_admin.calls("department/list") == 2
    assert sim_admin.calls("gettoken") == 2


def test_invalidate_keeps_a_token_another_process_already_refreshed(connections):
    from wecom.warehouse import connect

    store = PostgresTokenStore(lambda: connect("wecom_warehouse"))
    key = cache_key("corp", "secret")
    store.get(key, lambda: ("old-token-value", 7200), margin=60)
    with psycopg.connect(connections["warehouse"], autocommit=True) as conn:  # another process refreshed
        conn.execute("UPDATE wecom_private.access_tokens SET access_token = 'new-token-value'")
    store.invalidate(key, "old-token-value")
    assert store.get(key, lambda: pytest.fail("must not refetch"), margin=60).value == "new-token-value"
    store.invalidate(key, "new-token-value")
    assert store.get(key, lambda: ("third-token-value", 7200), margin=60).value == "third-token-value"


def test_transient_errors_are_retried_then_succeed(connections, sim_admin):
    sim_admin.fault("errcode", "department/list", count=1, errcode=-1)
    sim_admin.fault("errcode", "department/list", count=1, errcode=45033)
    sim_admin.fault("http502", "department/list", count=1)
    assert WeComHook().list_departments()
    assert sim_admin.calls("department/list") == 4


@pytest.mark.parametrize(
    ("kind", "message"),
    [("http502", "HTML page"), ("truncated", "invalid or truncated JSON"), ("reset", "network error")],
)
def test_persistent_faults_become_transient_errors_after_bounded_retries(
    connections, sim_admin, kind, message
):
    WeComHook().get_access_token()
    sim_admin.fault(kind, "user/list", count=-1)
    with pytest.raises(WeComTransientError, match=message):
        WeComHook().list_department_members(1)
    assert sim_admin.calls("user/list") == 4  # the first try and max_retries=3


def test_timeouts_are_transient(simulator, sim_admin, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WECOM_SLOW",
        wecom_conn(simulator.url, read_timeout=0.3, max_retries=1, token_store="memory"),
    )
    hook = WeComHook("wecom_slow")
    hook.get_access_token()
    sim_admin.fault("latency", "department/list", count=2, latency_ms=1500)
    with pytest.raises(WeComTransientError, match="timed out"):
        hook.list_departments()


def test_frequency_block_is_not_retried_hot(connections, sim_admin):
    sim_admin.fault("errcode", "department/list", count=1, errcode=45009)
    with pytest.raises(WeComRateLimitedError) as info:
        WeComHook().list_departments()
    assert not isinstance(info.value, AirflowFailException)  # the task's retry delay handles it
    assert sim_admin.calls("department/list") == 1


@pytest.mark.parametrize("errcode", [60020, 48002, 301002])
def test_configuration_errors_fail_at_once_without_retries(connections, sim_admin, errcode):
    sim_admin.fault("errcode", "department/list", count=1, errcode=errcode)
    with pytest.raises(WeComConfigError) as info:
        WeComHook().list_departments()
    assert isinstance(info.value, AirflowFailException)
    assert info.value.advice  # tells the operator what to fix
    assert sim_admin.calls("department/list") == 1


def test_wrong_secret_is_a_configuration_error_with_one_gettoken(simulator, sim_admin, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_BAD", wecom_conn(simulator.url, secret="wrong-secret-value-123"))
    with pytest.raises(WeComConfigError, match="40001") as info:
        WeComHook("wecom_bad", token_store=MemoryTokenStore()).list_departments()
    assert "wrong-secret-value-123" not in str(info.value)
    assert sim_admin.calls("gettoken") == 1


def test_per_item_and_caller_errors(connections, sim_admin):
    hook = WeComHook()
    with pytest.raises(WeComItemError) as item:
        hook.list_department_members(999999)
    assert item.value.errcode == 60003
    with pytest.raises(WeComCallerError) as caller:
        hook.send_message({"touser": "x", "msgtype": "text", "text": {"content": "长" * 1000}})
    assert caller.value.errcode == 45002 and isinstance(caller.value, AirflowFailException)


def test_send_message_reports_invalid_recipients_and_all_invalid(connections, simulator, sim_admin):
    hook = WeComHook()
    someone = next(iter(simulator.state.org.users.values()))["userid"]
    result = hook.send_message(
        {"touser": f"{someone}|ghost1", "msgtype": "text", "text": {"content": "hello"}}
    )
    assert result.msgid and result.invalid_users == ["ghost1"] and not result.all_invalid
    nobody = hook.send_message({"touser": "ghost1|ghost2", "msgtype": "text", "text": {"content": "hello"}})
    assert nobody.all_invalid and nobody.msgid is None
    assert [m["userid"] for m in sim_admin.messages()] == [someone.lower()]
    hook.recall_message(result.msgid)


def test_test_connection_reports_without_leaking(simulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_UI", wecom_conn(simulator.url, token_store="memory"))
    good, message = WeComHook("wecom_ui").test_connection()
    assert good and "token obtained" in message
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_UI", wecom_conn(simulator.url, secret="bad-secret-987654"))
    good, message = WeComHook("wecom_ui").test_connection()
    assert not good and "40001" in message and "bad-secret-987654" not in message


def test_connection_without_agent_id_or_with_bad_extras_says_what_to_fix(simulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_X", wecom_conn(simulator.url, agent_id=None, token_store="memory"))
    with pytest.raises(SettingsError, match="agent_id"):
        WeComHook("wecom_x").send_message({"touser": "a", "msgtype": "text", "text": {"content": "x"}})
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_X", wecom_conn(simulator.url, read_timeout="soon"))
    with pytest.raises(SettingsError, match="must be a number"):
        WeComHook("wecom_x").get_access_token()


def test_no_secret_or_token_in_logs_or_exceptions(connections, simulator, sim_admin, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 prints every request line (with its query) at DEBUG
    hook = WeComHook()
    errors = []
    hook.list_departments()
    sim_admin.revoke_tokens()
    hook.list_department_members(1)
    for kind in ("reset", "http502", "truncated"):
        sim_admin.fault(kind, "user/list", count=-1)
        try:
            hook.list_department_members(1)
        except WeComTransientError as exc:
            errors.append(exc)
        sim_admin.clear_faults()
    sim_admin.fault("errcode", "department/list", count=2, errcode=40014)
    try:
        hook.list_departments()
    except WeComTokenError as exc:
        errors.append(exc)
    assert len(errors) == 4
    text = caplog.text + "\n".join(f"{e!s} {e!r} {e.__cause__!r} {e.__context__!r}" for e in errors)
    tokens = list(simulator.state.tokens)
    assert len(tokens) >= 2
    assert "GET /cgi-bin/" in caplog.text  # the request lines were logged, redacted
    for secret in [simulator.state.config.secret, *tokens]:
        assert secret not in text
