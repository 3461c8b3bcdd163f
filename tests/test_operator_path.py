"""The README's commands for a person, run exactly as written from a clean environment (no venv on PATH):
``make airflow`` up to a digest previewed from the UI's trigger form and run by the scheduler, then Ctrl-C
and nothing left behind; ``make demo``, ``make demo-stop`` and ``make demo-clean`` with their printed hints checked.

These run on a machine where no PostgreSQL answers on the usual port (``WECOM_LOCAL_DATABASE_URL`` points
at a closed one), the harder path: the commands start, keep and stop a private cluster themselves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from conftest import ROOT, person_environment
from test_ui import CHROMIUM, shot

from wecom_dev.postgres import running_cluster
from wecom_dev.processes import MARKER, free_port, leftover_processes

# Every test that runs `make airflow` runs on one pytest-xdist worker, one after another: airflow standalone's
# scheduler and triggerer serve their logs on fixed ports (8793, 8794), which two at once would share.
ONE_MAKE_AIRFLOW_AT_A_TIME = pytest.mark.xdist_group("make_airflow")


def clean_environment(demo_dir: Path, marker: str) -> dict[str, str]:
    """A person's shell (``person_environment``), with the demo's folder and no PostgreSQL on the usual port."""
    return {
        **person_environment(),
        "WECOM_DEMO_DIR": str(demo_dir),
        "WECOM_LOCAL_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        MARKER: marker,
    }


class Command:
    """A README command running in its own session (as a terminal would), its output collected."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None:
                self._reader.join(5)
                if text in self.output:
                    return
                pytest.fail(f"exited {self.process.returncode} before {text!r}:\n{self.output[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} in {timeout:.0f} s:\n{self.output[-4000:]}")
            time.sleep(0.5)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the terminal's foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(180)
        self._reader.join(10)
        return code


@pytest.fixture
def demo_dir() -> Path:
    """Where the commands keep .demo: readable by the postgres user a private cluster runs as."""
    base = Path(tempfile.mkdtemp(prefix="wecom-demo-"))
    base.chmod(0o755)
    yield base / "demo"
    subprocess.run(["rm", "-rf", str(base)], check=False)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@ONE_MAKE_AIRFLOW_AT_A_TIME
@pytest.mark.timeout(900)
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_make_airflow_previews_a_digest_from_the_trigger_form_and_ctrl_c_leaves_nothing(demo_dir):
    from playwright.sync_api import sync_playwright

    marker = uuid.uuid4().hex
    port = free_port()
    env = {**clean_environment(demo_dir, marker), "AIRFLOW__API__PORT": str(port)}
    started = time.monotonic()
    command = Command(["make", "airflow"], env)
    try:
        command.wait_for("Airflow is ready", timeout=420)
        ready_after = time.monotonic() - started
        url = re.search(r"Airflow is ready: (\S+)", command.output).group(1)
        assert url == f"http://localhost:{port}"
        password_file = Path(re.search(r"password: in (\S+)", command.output).group(1))
        password = json.loads(password_file.read_text())["admin"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _log_in(page, url, password)
            run_id = _trigger_dry_run(page, url)
            result = _wait_for_success(url, password, run_id)
            _show_preview(page, url, run_id)
            browser.close()
        assert result["dry_run"] is True and result["sent"] == 0 and result["rendered"] > 0
        assert result["preview"] and all({"to", "key", "text"} <= set(p) for p in result["preview"])
        assert len(result["preview"]) + result["preview_not_shown"] == result["rendered"]
    finally:
        code = command.interrupt()
    print(f"make airflow: UI usable after {ready_after:.1f} s")
    assert "Nothing left running." in command.output, command.output[-3000:]
    assert leftover_processes(marker) == []
    assert not _listening(port)
    assert running_cluster(demo_dir / "pg") is None  # the private cluster it started is stopped
    assert code in (0, 2, -signal.SIGINT), command.output[-2000:]


def _log_in(page, url: str, password: str) -> None:
    page.goto(f"{url}/")
    page.wait_for_selector("input[name='username'], input#username", timeout=60_000)
    page.fill("input[name='username'], input#username", "admin")
    page.fill("input[name='password'], input#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/auth/login" not in u, timeout=60_000)


def _trigger_dry_run(page, url: str) -> str:
    """The digest's trigger form: dry_run switched on, the rest at defaults, unpaused on trigger."""
    page.goto(f"{url}/dags/interview_daily_digest")
    page.get_by_role("button", name="Trigger").first.click(timeout=60_000)
    page.get_by_text("dry_run").first.wait_for(timeout=30_000)
    switch = page.locator("[id='switch:element_dry_run']")
    switch.click()
    assert switch.get_attribute("data-state") == "checked"
    assert page.get_by_role("checkbox", name=re.compile("Unpause")).is_checked()
    shot(page, "05-digest-dry-run-form")
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Trigger").last.click()
    page.wait_for_url(re.compile(r"/runs/"), timeout=60_000)
    return page.url.split("/runs/")[1].split("/")[0].split("?")[0]


def _api(url: str, password: str) -> requests.Session:
    session = requests.Session()
    token = session.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return session


def _wait_for_success(url: str, password: str, run_id: str) -> dict:
    """The run goes through the scheduler (standalone's), not dag.test(): wait for it to succeed."""
    api = _api(url, password)
    base = f"{url}/api/v2/dags/interview_daily_digest/dagRuns/{requests.utils.quote(run_id, safe='')}"
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline:
        state = api.get(base, timeout=30).json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(2)
    assert state == "success", state
    conf = api.get(base, timeout=30).json()["conf"]
    assert conf.get("dry_run") is True
    xcom = api.get(f"{base}/taskInstances/send_digests/xcomEntries/return_value", timeout=30).json()
    value = xcom["value"]
    return json.loads(value) if isinstance(value, str) else value


def _show_preview(page, url: str, run_id: str) -> None:
    """What a person opens to read the preview: the task log, then the task's XCom."""
    task = f"{url}/dags/interview_daily_digest/runs/{run_id}/tasks/send_digests"
    page.goto(task)
    page.get_by_text("Dry run: to ").first.wait_for(timeout=60_000)
    shot(page, "06-digest-dry-run-preview-log")
    page.goto(f"{task}/xcom")
    page.get_by_text("preview_not_shown").first.wait_for(timeout=60_000)
    shot(page, "07-digest-dry-run-preview-xcom")


@pytest.mark.timeout(600)
def test_make_demo_then_its_psql_hint_works_until_make_demo_stop(demo_dir):
    marker = uuid.uuid4().hex
    env = clean_environment(demo_dir, marker)
    demo = subprocess.run(["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=480)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "=== WeCom demo: done ===" in demo.stdout
    hint = re.search(r"Look in SQL \(psql (\S+)\):", demo.stdout).group(1)
    with psycopg.connect(hint) as conn:  # the hint works after the command has finished
        assert conn.execute("SELECT count(*) FROM wecom.users WHERE deleted_at IS NULL").fetchone()[0] == 300
    assert "make demo-stop" in demo.stdout
    _assert_demo_shows_the_loop(demo.stdout, hint)  # the block at the end of this file
    stop = subprocess.run(
        ["make", "demo-stop"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert stop.returncode == 0 and "Stopped the private PostgreSQL" in stop.stdout, stop.stdout + stop.stderr
    assert running_cluster(demo_dir / "pg") is None
    assert leftover_processes(marker) == []
    clean = subprocess.run(
        ["make", "demo-clean"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert clean.returncode == 0 and not demo_dir.exists(), clean.stdout + clean.stderr


# --- `make demo` shows the two-way loop (issue 21, item 9) ------------------------------------------------
# Its own block, called from test_make_demo_then_its_psql_hint_works_until_make_demo_stop: what the output
# says about the loop, checked against the database its psql hint names.


def _assert_demo_shows_the_loop(stdout: str, db_url: str) -> None:
    cancelled, moved = map(
        int, re.search(r"Two reminder cards answered \(interviews (\d+) and (\d+)", stdout).groups()
    )
    # A tapped card's answer: recorded, and shown on the card; the decline told to the recruiter.
    assert re.search(
        rf'interview {cancelled}: \S+ answered confirmed at .*shows "已确认 \d\d:\d\d" \(updated\)', stdout
    )
    assert re.search(
        rf'interview {moved}: \S+ answered declined at .*shows "已告知无法参加" \(updated\)', stdout
    )
    assert "the decline reached the recruiter" in stdout
    # The contact change reaching the directory through the receiver.
    moved_member = re.search(
        r"wecom\.users: (\S+) \S+, 招聘经理, (\S+) \(was .*applied .* by incremental sync run", stdout
    )
    assert moved_member, stdout[-4000:]
    # The corrected cards, the notices and the calendars after the platform's changes.
    assert re.search(rf'card for {cancelled}: "已确认 \d\d:\d\d" -> "已取消"', stdout)
    assert re.search(rf'card for {moved}: "已告知无法参加" -> "已改期至 \d\d-\d\d 15:00"', stdout)
    assert re.search(rf'notice of {cancelled} cancelled to \S+: sent at .* "面试已取消"', stdout)
    assert re.search(rf'notice of {moved} moved to \S+: sent at .* "面试已改期"', stdout)
    calendars = re.findall(
        r"WeCom calendar for \d\d-\d\d \(SimulatorAdmin.calendar\): before (.*); after (.*)", stdout
    )
    assert len(calendars) == 2, stdout[-4000:]
    assert calendars[0][0].startswith("09:00-10:00 面试 Interview") and calendars[0][1] == "(nothing)"
    assert calendars[1][0].startswith("09:00-10:00 面试 Interview") and calendars[1][1].startswith(
        "15:00-16:00 面试"
    )
    # Where to look: the queries and the simulator's pages.
    assert f"wecom.interview_changes WHERE interview_id IN ({cancelled}, {moved});" in stdout
    assert "/_admin/cards" in stdout and "/_admin/calendar?userid=" in stdout
    assert "callback_token" not in stdout and "callback_aes_key" not in stdout
    with psycopg.connect(db_url) as conn:
        answers = dict(conn.execute("SELECT interview_id, choice FROM wecom.reminder_responses"
                                    " WHERE interview_id = ANY(%s)", ([cancelled, moved],)).fetchall())  # fmt: skip
        assert answers == {cancelled: "confirmed", moved: "declined"}
        notices = conn.execute("SELECT interview_id, changes, notice FROM wecom.interview_changes"
                               " WHERE interview_id = ANY(%s) ORDER BY 1", ([cancelled, moved],)).fetchall()  # fmt: skip
        assert notices == [(cancelled, ["cancelled"], "sent"), (moved, ["moved"], "sent")]
        calendar = dict(conn.execute("SELECT interview_id, state || ' ' || sync_state FROM wecom.calendar_sync"
                                     " WHERE interview_id = ANY(%s)", ([cancelled, moved],)).fetchall())  # fmt: skip
        assert calendar == {cancelled: "deleted in step", moved: "synced in step"}
        member = conn.execute("SELECT u.position, d.name FROM wecom.users u JOIN wecom.departments d"
                              " ON d.department_id = u.main_department WHERE u.userid = %s",
                              (moved_member.group(1),)).fetchone()  # fmt: skip
        assert member == ("招聘经理", moved_member.group(2))
