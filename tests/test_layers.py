"""Imports point one way (pyproject.toml, [tool.importlinter]): the contract holds on this tree,
and a reversed import fails it by name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.test_lint import PACKAGES

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)})


def test_the_layers_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_import_pointing_back_up_fails_by_name(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.npz", "*.yaml"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "contracts" / "reversed_probe.py").write_text("from serving.stages.respond import Respond\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "contracts is not allowed to import serving" in result.stdout
    assert "contracts.reversed_probe -> serving.stages.respond" in result.stdout
