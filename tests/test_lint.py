"""The code passes the project's lint rules (pyproject.toml, [tool.ruff])."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["contracts", "stores", "webio", "fallback", "access", "autoscaler", "costbook", "costlevers", "serving", "spillover"]


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", *PACKAGES, "bench", "tests"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
