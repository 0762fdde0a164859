"""A costs figure that no longer follows from the raw outcomes (each request's latency, each
run's ledger check) is caught by ``bench/costs.py --recompute``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench._common import RESULTS, load_raw, raw_path, save_raw

REPO = Path(__file__).resolve().parents[2]


def test_one_slower_request_is_caught_by_the_command(tmp_path: Path) -> None:
    """The recorded outcomes with every run's slowest ok request made 10 s slower: ``--recompute``
    against the record must name the runs it moved and exit 1."""
    header, rows = load_raw(raw_path("costs"))
    slowest: dict[tuple[str, int], dict] = {}
    for row in rows:
        key = (row["setup"], row["round"])
        if row["status"] == 200 and (key not in slowest or row["latency_s"] > slowest[key]["latency_s"]):
            slowest[key] = row
    changed = [dict(r, latency_s=r["latency_s"] + 10.0) if r is slowest[r["setup"], r["round"]] else r for r in rows]
    raw = tmp_path / "changed.raw.jsonl.gz"
    save_raw(raw, header, changed)
    command = [sys.executable, "bench/costs.py", "--recompute", str(raw), "--recorded", str(RESULTS / "costs.json")]
    failed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert failed.returncode == 1 and "differs: by_round.direct:" in failed.stdout, failed.stdout + failed.stderr
