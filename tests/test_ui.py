"""The Airflow UI, tried as a person would: log in, see the DAGs, open the digest's trigger form and the
WeCom connection form, with a screenshot of each page in test-artifacts/ui/. Needs Debian's Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import ROOT

from wecom_dev.processes import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts" / "ui"
PASSWORD = "ui-test-password"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.xdist_group("ui"),  # on one pytest-xdist worker: one api-server and browser for the module
]


@pytest.fixture(scope="module")
def api_server(airflow_db):
    home = Path(os.environ["AIRFLOW_HOME"])
    passwords = home / "ui_passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
    }
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
    port = free_port()
    log = open(home / "api-server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([airflow, "api-server", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if server.poll() is not None:
            pytest.fail(f"api-server exited: {(home / 'api-server.log').read_text()[-3000:]}")
        time.sleep(1)
    else:
        pytest.fail(
            f"api-server did not become healthy in 120 s: {(home / 'api-server.log').read_text()[-3000:]}"
        )
    yield url
    server.terminate()
    server.wait(30)
    log.close()


@pytest.fixture(scope="module")
def page(api_server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        yield context.new_page()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_api_server_mounts_the_callback_receiver(api_server):
    """The provider's plugin puts the receiver at /wecom/callback; with no callback secrets in the WeCom
    connection it says so with a 503, not a crash (the log says what is missing)."""
    answer = requests.get(f"{api_server}/wecom/callback", params={"echostr": "x"}, timeout=30)
    assert answer.status_code == 503 and answer.content == b""


def test_log_in_and_see_the_three_dags_without_import_errors(page, api_server):
    page.goto(f"{api_server}/")
    page.wait_for_selector("input[name='username'], input#username", timeout=60_000)
    shot(page, "01-login")
    page.fill("input[name='username'], input#username", "admin")
    page.fill("input[name='password'], input#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)
    page.goto(f"{api_server}/dags")
    for dag_id in ("wecom_directory_sync", "interview_daily_digest", "interview_reminders"):
        page.get_by_text(dag_id, exact=True).first.wait_for(timeout=60_000)
    shot(page, "02-dags")
    assert "Import Error" not in page.content()


def test_digest_trigger_form_shows_its_params(page, api_server):
    page.goto(f"{api_server}/dags/interview_daily_digest")
    page.get_by_role("button", name="Trigger").first.click(timeout=60_000)
    page.get_by_text("dry_run").first.wait_for(timeout=30_000)
    shot(page, "03-digest-trigger-form")
    content = page.content()
    for param in ("day", "dry_run", "only_users", "language", "leader_summary"):
        assert param in content


def test_wecom_connection_form_shows_its_fields(page, api_server):
    page.goto(f"{api_server}/connections")
    page.get_by_role("button", name="Add Connection").first.click(timeout=60_000)
    page.get_by_text("Connection Type").first.wait_for(timeout=30_000)
    chooser = page.locator("[role='combobox'], select").first
    chooser.click()
    page.keyboard.type("WeCom")
    page.get_by_text("WeCom", exact=True).first.click()
    page.get_by_text("Corp ID").first.wait_for(timeout=30_000)
    shot(page, "04-wecom-connection-form")
    content = page.content()
    for label in ("API base URL", "Corp ID", "App secret", "Agent ID"):
        assert label in content


def test_the_directory_assets_and_their_graph(page, api_server):
    """The directory tables as assets, produced by the sync and consumed by a DAG scheduled on them."""
    page.goto(f"{api_server}/assets")
    for name in ("wecom.users", "wecom.departments", "wecom.user_departments"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
    shot(page, "08-directory-assets")
    page.get_by_text("wecom.users", exact=True).first.click()
    page.get_by_text("wecom_directory_sync").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)  # the graph lays itself out
    shot(page, "09-directory-asset-graph")
    assert "wecom_directory_consumer" in page.content()
