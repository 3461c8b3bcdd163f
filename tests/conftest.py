"""Shared fixtures: a real PostgreSQL (fresh database per test), a real simulator over HTTP, and a
private Airflow home with an SQLite metadata DB. Environment is set before Airflow is imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A private AIRFLOW_HOME for the whole run, configured before anything imports airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="wecom-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# The project's DAGs, plus small DAGs that only tests run (dag.test() needs them in a bundle).
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
        {
            "name": "test-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(ROOT / "tests" / "dags")},
        },
    ]
)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# One key for every process of the run (pytest and the `airflow` commands it starts): the inbox assets'
# triggers are stored encrypted, and unit-test mode would otherwise give each process a key of its own.
os.environ["AIRFLOW__CORE__FERNET_KEY"] = "j6THed4CBkfxE_8YAcfIw4PaiGlbShKFcXWws-yfuYY="
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
# OpenLineage events go to a file the lineage tests read (no network).
OPENLINEAGE_EVENTS = _AIRFLOW_HOME / "openlineage.jsonl"
os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
    {"type": "file", "log_file_path": str(OPENLINEAGE_EVENTS), "append": True}
)
os.environ["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "wecom-tests"

from wecom_dev.environment import postgres_conn_json, wecom_conn_json  # noqa: E402
from wecom_dev.postgres import Server, find_server  # noqa: E402
from wecom_dev.processes import free_port  # noqa: E402
from wecom_simulator import SimulatorAdmin, SimulatorConfig, WeComSimulator, generate_org  # noqa: E402

SIM_CONFIG = SimulatorConfig()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--dist loadgroup``: send the tests marked ``xdist_group`` to one worker, as pytest-xdist means to.

    pytest-xdist 3.8 tells its scheduler a test's group by appending ``@group`` to the test's node id in
    ``item._nodeid``, which pytest 9.2 no longer reads (it keeps the id in ``item._id``): the groups are then
    ignored without a word (pytest-dev/pytest-xdist#1386). Append it where pytest 9.2 keeps it; a no-op once
    pytest-xdist does it itself."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers only
        return
    from _pytest.nodeid import NodeId

    for item in items:
        marks = item.iter_markers("xdist_group")
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)
            assert item.nodeid.endswith(suffix), f"{item.nodeid}: the xdist_group would be ignored"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    server = find_server()
    yield server
    server.stop()


@pytest.fixture
def db_url(pg_server: Server) -> Iterator[str]:
    """A fresh, empty database for one test."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def simulator() -> Iterator[WeComSimulator]:
    with WeComSimulator(generate_org(users=60, departments=8, seed=7), SimulatorConfig()) as sim:
        yield sim


@pytest.fixture
def sim_admin(simulator: WeComSimulator) -> SimulatorAdmin:
    return SimulatorAdmin(simulator.url)


def conn_json(conn_type: str, **fields: object) -> str:
    return json.dumps({"conn_type": conn_type, **fields})


def wecom_conn(url: str, *, secret: str = SIM_CONFIG.secret, **extra: object) -> str:
    """An AIRFLOW_CONN_ value for the simulator, with fast retries for tests."""
    return wecom_conn_json(
        url, SimulatorConfig(secret=secret), **{"retry_backoff": 0.01, "read_timeout": 5, **extra}
    )


postgres_conn = postgres_conn_json


def use_connections(monkeypatch: pytest.MonkeyPatch, wecom_url: str, db_url: str, **extra: object) -> None:
    """wecom_default (the simulator at ``wecom_url``, with these extras) and wecom_warehouse (``db_url``)
    as env connections, with the token caches emptied (each test has its own warehouse)."""
    from wecom import token_store

    monkeypatch.setenv("AIRFLOW_CONN_WECOM_DEFAULT", wecom_conn(wecom_url, **extra))
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAREHOUSE", postgres_conn(db_url))
    token_store._postgres_stores.clear()
    token_store._memory_store.__init__()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, simulator: WeComSimulator, db_url: str) -> dict[str, str]:
    """wecom_default (the simulator) and wecom_warehouse (a fresh database) as env connections."""
    use_connections(monkeypatch, simulator.url, db_url)
    return {"wecom": simulator.url, "warehouse": db_url}


def person_environment() -> dict[str, str]:
    """A person's shell, as the README's commands meet it: their PATH without this project's venv, and
    nothing of the test run's own settings."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def assert_form_takes_the_defaults(params, where: str) -> None:
    """Airflow's forms (trigger, Required Actions) send a field left empty as null and hold back the button
    while a field fails its schema: a param with an empty default must allow null, and each default must
    validate (a string param defaulting to "" froze the digest's trigger form, seen in CI in Chromium)."""
    for name in params:
        param = params.get_param(name)
        types = param.schema.get("type", [])
        types = [types] if isinstance(types, str) else types
        if param.value in ("", None):
            assert "null" in types, f"{where}.{name}: an empty default must allow null ({types})"
        param.resolve(param.value)


def load_dag(folder: Path, dag_id: str, *, retries: int = 0):
    """A DAG from a folder, with retries off: a failure is final in tests (the retry delay is Airflow's)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(dag_id)
    for task in dag.tasks:
        task.retries = retries
    return dag


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the SQLite metadata DB once per run (only tests that run DAGs need it)."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return _AIRFLOW_HOME


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def sealed_delivery(
    crypto, message: str, *, timestamp: int | None = None, nonce: str = "n1"
) -> tuple[dict, bytes]:
    """What WeCom posts for one message: the query (signature, timestamp, nonce) and the XML body."""
    import time

    from wecom.callbacks.crypto import signature

    timestamp = int(time.time()) if timestamp is None else timestamp
    encrypted = crypto.encrypt(message.encode())
    query = {"msg_signature": signature(crypto.token, str(timestamp), nonce, encrypted), "timestamp": str(timestamp),
             "nonce": nonce}  # fmt: skip
    body = (f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]>"
            "</Encrypt><AgentID>1000002</AgentID></xml>")  # fmt: skip
    return query, body.encode()
