"""The picture and the rules are one: the layer diagram in docs/architecture.md is the import-linter layers
contract in pyproject.toml, line for line."""

from __future__ import annotations

import re
import tomllib

from conftest import ROOT


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [{m.strip() for m in line.split("|")} for line in layers]


def diagram_layers() -> list[set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```\n(provider.*?)```", text, re.S).group(1)
    # each line: modules separated by " | ", then at least two spaces and what the layer is for
    return [{m.strip() for m in re.split(r"\s{2,}", line)[0].split("|")} for line in block.splitlines()]


def test_the_layer_diagram_is_the_import_contract():
    assert diagram_layers() == contract_layers()


def test_every_module_of_the_package_is_placed_in_a_layer():
    placed = set().union(*contract_layers())
    package = ROOT / "plugins" / "wecom"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules - placed == set(), "modules the layers contract does not place"
