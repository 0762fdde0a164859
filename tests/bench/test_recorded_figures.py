"""Every record under ``bench/results`` was made on a committed tree, has its raw outcomes
beside it, and each of its figures follows from them by its bench's own derivation: a record
with no raw file, or a figure typed over, fails here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench import (
    alerts, batch, cache_shift, cascade_ttft, compression, costs, drills, experiments, prompt_tokens, routing, serving, spillover,
    stream_batching,
)
from bench import autoscaler as fleet_policies
from bench import cache as cache_lookup
from bench._common import REPO, RESULTS, load_raw, raw_path, recompute_differences

Derive = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
#: Each record's name (``bench/results/NAME.json``) and the function its bench derives it with.
DERIVATIONS: dict[str, Derive] = {
    "alerts": alerts.derive,
    "autoscaler": fleet_policies.derive,
    "batch": batch.derive,
    "cache": cache_shift.derive,
    "cache_lookup": cache_lookup.derive,
    "cascade_ttft": cascade_ttft.derive,
    "compression": compression.derive,
    "costs": costs.derive,
    "drills": drills.derive,
    "experiments": experiments.derive,
    "prompt_tokens": prompt_tokens.figures_of,
    "routing": routing.derive,
    "serving": serving.derive,
    "spillover": spillover.derive,
    "stream_batching": stream_batching.derive,
}


@pytest.mark.parametrize("recorded", sorted(RESULTS.glob("*.json")), ids=lambda path: path.stem)
def test_a_record_is_rebuilt_from_its_raw_outcomes(recorded: Path) -> None:
    figures = json.loads(recorded.read_text())
    assert figures["provenance"]["dirty"] is False, "the record was made on a tree with uncommitted changes"
    assert recorded.stem in DERIVATIONS, f"{recorded.name}: no bench derives it from raw outcomes"
    assert figures["provenance"]["raw"] == str(raw_path(recorded.stem).relative_to(REPO))
    header, rows = load_raw(raw_path(recorded.stem))
    assert recompute_differences(figures, DERIVATIONS[recorded.stem](header, rows)) == []
