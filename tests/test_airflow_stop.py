"""Ctrl-C on ``make airflow``, run exactly as the README says (clean environment, no venv on PATH): SIGINT to
the whole foreground process group as a terminal sends it (twice in a row), and to the demo process alone.
Each time every process it started is gone within 15 s, and its ``Nothing left running.`` is true when
printed. Like the operator-path test, on a machine where no PostgreSQL answers on the usual port: the
command starts and stops a private cluster itself (one data folder for the three runs, so only the first
prepares the demo)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from test_operator_path import ONE_MAKE_AIRFLOW_AT_A_TIME, Command, clean_environment

from wecom_dev.postgres import running_cluster
from wecom_dev.processes import MARKER, free_port, leftover_processes, stop_tree, sweep

LIMIT = 15.0  # seconds from Ctrl-C until nothing is left
NOTHING_LEFT = "Nothing left running."


@pytest.fixture(scope="module")
def shared_demo_dir() -> Path:
    base = Path(tempfile.mkdtemp(prefix="wecom-stop-"))
    base.chmod(0o755)  # readable by the postgres user the private cluster runs as
    yield base / "demo"
    subprocess.run(["rm", "-rf", str(base)], check=False)


@ONE_MAKE_AIRFLOW_AT_A_TIME
@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", ["group", "group again", "demo process"])
def test_ctrl_c_stops_everything_within_15_s(shared_demo_dir, target):
    marker = uuid.uuid4().hex
    port = free_port()
    env = {**clean_environment(shared_demo_dir, marker), "AIRFLOW__API__PORT": str(port)}
    command = Command(["make", "airflow"], env)
    try:
        command.wait_for("Airflow is ready", timeout=420)
        time.sleep(2)
        if target == "demo process":  # make forwards nothing: only the demo process gets it
            os.kill(_demo_process(command.process.pid), signal.SIGINT)
        else:  # a terminal's Ctrl-C: the foreground process group, make and the demo in it
            os.killpg(command.process.pid, signal.SIGINT)
        gone_after, left_when_said = _wait_until_gone(command, marker)
    finally:
        _clean_up(command, marker)
    print(f"make airflow, SIGINT to the {target}: everything gone after {gone_after:.1f} s")
    assert gone_after <= LIMIT, f"still running {LIMIT:.0f} s after Ctrl-C:\n{command.output[-3000:]}"
    assert NOTHING_LEFT in command.output, command.output[-3000:]
    assert left_when_said == set(), f"{NOTHING_LEFT!r} printed while {left_when_said} ran"
    # make, when it got the Ctrl-C too, waits for the demo and then dies of it
    assert command.process.returncode in ((0,) if target == "demo process" else (2, -signal.SIGINT))
    assert not _listening(port)
    assert running_cluster(shared_demo_dir / "pg") is None


def _demo_process(make_pid: int) -> int:
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == make_pid and b"wecom_dev.demo" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    raise AssertionError(f"no demo process under make ({make_pid})")


def _wait_until_gone(command: Command, marker: str) -> tuple[float, set[int] | None]:
    """Seconds until make has exited and no process of the run lives (zombies do not), and what else than
    make and the demo process lived right after the demo said nothing did (None if it never said it)."""
    started = time.monotonic()
    own = {command.process.pid}
    left_when_said = None
    while time.monotonic() - started < LIMIT + 30:  # past the limit: to see how far off it is
        said = NOTHING_LEFT in command.output
        live = set(leftover_processes(marker))
        own |= {pid for pid in live if _parent(pid) == command.process.pid}  # the demo process
        if said and left_when_said is None:
            left_when_said = live - own
        if command.process.poll() is not None and not live:
            return time.monotonic() - started, left_when_said
        time.sleep(0.1)
    return time.monotonic() - started, left_when_said


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _clean_up(command: Command, marker: str) -> None:
    """Whatever outlived a failed stop, so that the next run starts clean."""
    if command.process.poll() is None:
        os.killpg(command.process.pid, signal.SIGKILL)
        command.process.wait(10)
    sweep(marker, MARKER)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# The stop itself, on a stand-in for `airflow standalone` (seconds, no Airflow): a leader that stops its
# child on SIGINT, as standalone does, and a child that either exits on SIGTERM or hangs like a component
# that got a second exit signal, with a grandchild that left the group.
LEADER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
def stop(signum, frame):
    child.terminate()
    child.wait()
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
print("up", flush=True)
time.sleep(60)
"""
CHILD = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, lambda *_: open(sys.argv[1], "a").write("SIGINT\\n"))
if sys.argv[1].endswith("hangs"):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("child", ["exits", "hangs"])
def test_stop_tree_signals_the_leader_alone_and_kills_what_outlives_the_grace(tmp_path, child):
    marker, signals = uuid.uuid4().hex, tmp_path / child
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER, CHILD, str(signals)], env={**os.environ, MARKER: marker},
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert leader.stdout.readline().strip() == "up"
        started = time.monotonic()
        killed = stop_tree(leader, marker, grace=2.0)
        took = time.monotonic() - started
        left = leftover_processes(marker)  # the stray that left the group too
    finally:
        sweep(marker)
    assert left == [] and leader.returncode is not None
    assert not signals.exists()  # only the leader got SIGINT, never its group
    if child == "exits":
        assert killed == [] and leader.returncode == 0 and took < 2.0
    else:  # the child ignores SIGTERM: SIGKILL, 2 s after the SIGTERM that ends the leader and the stray
        assert len(killed) == 1 and f"(pid {leader.pid})" not in killed[0], killed
        assert 4.0 <= took < 6.5
