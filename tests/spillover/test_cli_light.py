"""Commands that only read or write the database start without Ray, vLLM or torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from spillover.cli import main
assert main(["keys", "list"]) == 0
heavy = sorted(m for m in ("ray", "vllm", "torch") if m in sys.modules)
assert not heavy, heavy
"""


def test_keys_list_loads_no_engine_runtime(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "SPILLOVER__STORES__SQLITE_PATH": str(tmp_path / "db.sqlite"),
           "SPILLOVER__AUTH__SECRET_FILE": str(tmp_path / "secret"), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[]"
