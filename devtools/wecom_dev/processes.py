"""Processes the harness starts, each in its own process group and marked through its environment, so that
stopping them leaves nothing behind: not a child that left its group, not a port held."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

MARKER = "WECOM_RUN_MARKER"  # set in every process started, to find any that outlive the run


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_all(
    processes: dict[str, subprocess.Popen], marker: str, first: int = signal.SIGTERM, variable: str = MARKER
) -> list[str]:
    """``first`` (SIGTERM) to each process group, then SIGKILL what is left after 30 s, and anything that
    left its group; returns what had to be killed."""
    for process in processes.values():
        _signal_group(process.pid, first)
    deadline = time.monotonic() + 30
    for process in processes.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    killed = []
    for name, process in processes.items():
        if process.poll() is None or _group_alive(process.pid):
            killed.append(name)
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10)
    for pid in leftover_processes(marker, variable):  # anything that left its process group
        killed.append(f"pid {pid}")
        os.kill(pid, signal.SIGKILL)
    return killed


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_tree(
    process: subprocess.Popen, marker: str, variable: str = MARKER, grace: float = 6.0
) -> list[str]:
    """Stop a process that stops its own children on SIGINT (``airflow standalone``), within a bounded time.

    SIGINT to it alone, never to its process group: its children would get that signal on top of the
    SIGTERM it sends them, and Airflow's components hang on a second exit signal (the triggerer deadlocks
    on its log lock, the scheduler leaves its executor's workers waiting). Then ``grace`` seconds for it
    to exit, SIGTERM to whatever is left of its group or carries the marker, SIGKILL 2 s later; returns
    what needed SIGKILL."""
    if process.poll() is None:  # once reaped, its pid may be another process's
        _kill(process.pid, signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    left, killed = _live(process.pid, marker, variable), []
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        if sig == signal.SIGKILL:
            killed = [_describe(pid) for pid in sorted(left)]
        for pid in left:
            _kill(pid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            process.poll()  # reaps it once it has exited
            time.sleep(0.1)
            left = _live(process.pid, marker, variable)
    process.poll()
    return killed


def _describe(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    words = [Path(arg.decode(errors="replace")).name for arg in args[:3] if arg]
    command = " ".join(" ".join(w for w in words if not w.startswith("python")).split())
    return f"{command[:60]} (pid {pid})"


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _live(pgid: int, marker: str, variable: str) -> set[int]:
    """Processes not yet dead (zombies are) in process group ``pgid`` or carrying the marker."""
    found = set()
    needle = f"{variable}={marker}".encode()
    ours = _ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            state, _, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z" and (
                int(group) == pgid or needle in (entry / "environ").read_bytes().split(b"\0")
            ):
                found.add(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def leftover_processes(marker: str, variable: str = MARKER) -> list[int]:
    """Live processes whose environment carries this run's marker (zombies have none)."""
    found = []
    needle = f"{variable}={marker}".encode()
    ours = _ancestors()  # this process and the ones that started it (make, a shell) carry it too
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in ours:
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def sweep(marker: str, variable: str = MARKER, wait: float = 5.0) -> tuple[list[int], list[int]]:
    """SIGKILL every live process carrying the marker, and wait until none is left; returns those killed
    and those still there after ``wait`` seconds."""
    killed = leftover_processes(marker, variable)
    for pid in killed:
        _kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    left = killed and leftover_processes(marker, variable)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftover_processes(marker, variable)
    return killed, list(left)


def report_stop(killed: list[str]) -> str:
    return "Stopped every process started" + (f" ({', '.join(killed)} needed SIGKILL)" if killed else "")


def _ancestors() -> set[int]:
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found
