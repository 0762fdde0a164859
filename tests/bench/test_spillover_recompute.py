"""A spill-over figure that no longer follows from the raw outcomes is caught, in the
derivation and on the command line (that every record follows from its raw file is
tests/bench/test_recorded_figures.py)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench._common import RESULTS, load_raw, raw_path, recompute_differences, save_raw
from bench.spillover import derive

REPO = Path(__file__).resolve().parents[2]
RECORDED = RESULTS / "spillover.json"


@pytest.fixture(scope="module")
def recorded() -> tuple[dict, list[dict], dict]:
    header, rows = load_raw(raw_path("spillover"))
    return header, rows, json.loads(RECORDED.read_text())


def test_a_figure_typed_over_is_caught(recorded: tuple[dict, list[dict], dict]) -> None:
    header, rows, figures = recorded
    edited = copy.deepcopy(figures)
    edited["setups"]["spillover"]["slo_attainment"] = 1.0 if figures["setups"]["spillover"]["slo_attainment"] != 1.0 else 0.5
    assert recompute_differences(edited, derive(header, rows)) == ["setups.spillover.slo_attainment: recorded "
                                                                  f"{edited['setups']['spillover']['slo_attainment']!r}, recomputed "
                                                                  f"{figures['setups']['spillover']['slo_attainment']!r}"]


def test_the_recompute_command_on_a_small_sample(recorded: tuple[dict, list[dict], dict], tmp_path: Path) -> None:
    """The command line end to end, on a sample of the recorded rows (every probe send, each
    replay's first 40 requests): figures derived from it are found again by ``--recompute``, and
    one changed outcome makes it fail."""
    header, rows, _ = recorded
    sample = [r for r in rows if r["phase"] != "replay" or r["index"] < 40]
    raw, figures = tmp_path / "sample.raw.jsonl.gz", tmp_path / "sample.json"
    save_raw(raw, header, sample)
    figures.write_text(json.dumps(derive(header, sample)))
    command = [sys.executable, "bench/spillover.py", "--recompute", str(raw), "--recorded", str(figures)]
    ok = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    changed = [dict(r) for r in sample]
    kept = next(r for r in changed if r["phase"] == "replay" and r["setup"] == "spillover" and r["ok"])
    kept["ttft_s"] += 100.0
    save_raw(raw, header, changed)
    failed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert failed.returncode == 1 and "differs: setups.spillover" in failed.stdout, failed.stdout + failed.stderr
