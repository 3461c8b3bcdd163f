"""The README's benchmark commands, run as a person runs them (from the project folder, no venv activated).

Each runs exactly as written, except the two that take minutes at the README's scale (``directory_sync.py``
at 100k members, about 5 min here; ``load.py`` at 100k members and 20k interviews, about 13 min): those run
the same command with smaller sizes appended, which exercises every step they measure. Only that each one
runs and reports a comparison (a ratio, or the goal it is held to) is asserted: the figures are for the
benchmark's reader, never timed here.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import ROOT, person_environment

from wecom_dev.postgres import LOCAL_URL_ENV, URL_ENV

SMALLER = {
    "bench/directory_sync.py": "--users 3000 --departments 150",
    "bench/load.py": "--users 1000 --departments 50 --interviews 100 --interviewers 400",
}


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"## Benchmarks\n\n```bash\n(.*?)```", readme, re.S)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_lists_every_benchmark_and_make_bench_runs_the_same():
    commands = readme_commands()
    scripts = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "bench").glob("*.py"))
    assert sorted(c.split()[-1] for c in commands) == scripts
    make_bench = (ROOT / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert sorted(c.replace(".venv/bin/", "$(BIN)/") for c in commands) == sorted(
        re.findall(r"\t(.+)", make_bench)
    )


@pytest.mark.timeout(600)
@pytest.mark.xdist_group("bench")  # one at a time, beside the rest of the suite
@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: c.split("/")[-1])
def test_each_readme_benchmark_runs_and_reports(command: str):
    script = command.split()[-1]
    if script in SMALLER:
        command = f"{command} {SMALLER[script]}"
    env = person_environment()
    env |= {name: os.environ[name] for name in (URL_ENV, LOCAL_URL_ENV) if name in os.environ}  # as given
    done = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=540
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert re.search(r"\d\s?x\b|goal", done.stdout, re.I), done.stdout[-3000:]  # a ratio or its goal
