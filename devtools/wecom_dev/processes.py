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
