"""docker-compose.yaml checked without a Docker engine: what can be checked here, is."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from wecom_simulator.__main__ import parse_args

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = [
    name for name, spec in SERVICES.items() if spec.get("build") or "wecom-airflow" in str(spec.get("image"))
]


def test_the_official_celery_layout_is_all_there():
    expected = {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                "airflow-worker", "airflow-triggerer", "airflow-init", "wecom-simulator"}  # fmt: skip
    assert expected <= set(SERVICES)
    assert SERVICES["wecom-simulator"]["profiles"] == ["simulator"]
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "warehouse" in env["AIRFLOW_CONN_WECOM_WAREHOUSE"]  # the warehouse is its own database


@pytest.mark.parametrize("service", ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                                     "airflow-worker", "airflow-triggerer", "flower"])  # fmt: skip
def test_each_airflow_command_is_one_the_cli_knows(service):
    command = shlex.split(SERVICES[service]["command"])
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    result = subprocess.run([airflow, *command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]


def test_init_migrates_and_creates_the_pool():
    script = SERVICES["airflow-init"]["command"][1]
    assert "airflow db migrate" in script
    assert re.search(r"airflow pools set wecom_api \d+ ", script)


def test_the_callback_receiver_service_runs_the_console_script_the_image_installs():
    import tomllib

    command = SERVICES["wecom-callback-receiver"]["command"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] == "wecom-callback-receiver" and command[0] in scripts
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), command[0]), *command[1:], "--help"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0 and "--port" in result.stdout


def test_the_simulator_service_command_parses():
    command = SERVICES["wecom-simulator"]["command"]
    assert command[0] == "wecom-simulator"
    args = parse_args(command[1:])
    assert args.host == "0.0.0.0" and args.port == 8765


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_health_checks_are_well_formed(service):
    check = SERVICES[service].get("healthcheck")
    if service == "airflow-init":
        assert check is None
        return
    assert check, f"{service} has no health check"
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) >= 2
    for key in ("interval", "timeout"):
        assert re.fullmatch(r"\d+[smh]", check[key])
    assert isinstance(check["retries"], int)


def test_every_mounted_path_exists():
    for name, spec in SERVICES.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"


def test_the_image_airflow_version_matches_requirements():
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    base = re.search(r"^FROM apache/airflow:(\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert base.split("-")[0] == pinned


def _documented() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_every_environment_variable_used_is_documented():
    used = set(
        re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yaml").read_text())
    )  # $$ escapes
    used |= set(re.findall(r"\$([A-Z][A-Z0-9_]+)", (ROOT / "docker" / "init-warehouse.sql").read_text()))
    assert used - _documented() == set()


def test_no_secret_is_committed():
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^AIRFLOW__CORE__FERNET_KEY=$", example, re.M)
    assert re.search(r"^AIRFLOW__API_AUTH__JWT_SECRET=$", example, re.M)


def test_airflow_services_mount_the_project(tmp_path: Path):
    for name in AIRFLOW:
        mounts = {v.split(":")[1] for v in SERVICES[name].get("volumes", [])}
        if name != "wecom-simulator":
            assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts


def test_the_receiver_and_the_triggerers_inbox_watchers_meet_in_the_warehouse():
    """The receiver NOTIFYs in the warehouse where it stores an event; the triggerer's inbox trigger LISTENs
    there: both must name the same database."""
    receiver = SERVICES["wecom-callback-receiver"]["environment"]["AIRFLOW_CONN_WECOM_WAREHOUSE"]
    triggerer = SERVICES["airflow-triggerer"]["environment"]["AIRFLOW_CONN_WECOM_WAREHOUSE"]
    assert (
        receiver == triggerer
        and receiver.startswith("postgresql://")
        and "@postgres:5432/warehouse" in receiver
    )
    assert not any(
        "WAKEUP" in name for service in SERVICES.values() for name in service.get("environment", {})
    )
