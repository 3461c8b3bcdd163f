"""Airflow commands as the demo runs them: ``airflow ...`` in the demo's environment, failing with the
command's output, and ``airflow dags test`` saying what runs and how long it took."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from time import monotonic

BIN = Path(sys.executable).parent
WINDOW = timedelta(minutes=10)  # interview_reminders runs every 10 minutes: its data interval


def airflow(env: dict[str, str], *args: str, quiet: bool = True) -> None:
    command = [str(BIN / "airflow"), *args]
    result = subprocess.run(command, env=env, capture_output=quiet, text=True)
    if result.returncode != 0:
        tail = (result.stdout or "")[-3000:] + (result.stderr or "")[-3000:] if quiet else ""
        raise SystemExit(f"`airflow {' '.join(args)}` failed:\n{tail}")


def dags_test(env: dict[str, str], label: str, *args: str) -> None:
    """``airflow dags test ...``, saying what runs and how long it took."""
    print(f"Running {label} (airflow dags test {' '.join(args)})...", end=" ", flush=True)
    began = monotonic()
    airflow(env, "dags", "test", *args)
    print(f"{monotonic() - began:.0f} s", flush=True)
