"""The SQL and templates are found one way (``wecom.files``) in the checkout, in the Docker image's build
context and in an installed wheel; the production wheel carries no development tools."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

from wecom import files, sql


def test_the_checkout_finds_include_through_the_package():
    assert files.INCLUDE.resolve() == (ROOT / "include").resolve()
    assert sql.load("token_store.sql")
    assert (files.TEMPLATES / "digest.zh.md.j2").is_file()


def _image_build_context(target: Path) -> None:
    """What the Dockerfile's production stage copies before ``pip install /opt/wecom``."""
    stage = (ROOT / "Dockerfile").read_text().split("\nFROM ")[1]  # the first stage: the production image
    for source in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+?)\s+/opt/wecom/?\S*$", stage, re.M):
        for name in source.split():
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(
                    path, target / name, symlinks=True, ignore=shutil.ignore_patterns("*.egg-info")
                )
            else:
                shutil.copy2(path, target / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("image-context")
    _image_build_context(context)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(context)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return next(out.glob("wecom_airflow-*.whl"))


def test_the_wheel_built_like_the_image_carries_include_and_no_development_tools(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("wecom/include/") for n in names if n.startswith("wecom/include/")}
    expected = {str(p.relative_to(ROOT / "include")) for p in (ROOT / "include").rglob("*") if p.is_file()}
    assert shipped == expected
    assert not [
        n for n in names if n.startswith(("wecom_simulator", "wecom_dev", "wecom/simulator", "wecom/testing"))
    ]


def test_an_installed_wheel_finds_its_sql_and_templates_from_a_clean_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    probe = (
        "from wecom import files, sql; "
        "assert sql.statements('delivery/ledger.sql')['claim']; "
        "assert (files.TEMPLATES / 'reminder.en.md.j2').is_file(); "
        "assert len(list((files.SQL / 'migrations').glob('*.sql'))) >= 9; "
        "print(files.INCLUDE)"
    )
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(venv) in result.stdout  # the installed copy, not the checkout
