"""Sticky assignment: a user (or key) lands in the same variant on every request and replica.

A hash of (experiment, unit) is a uniform number in [0, 1) that needs no stored state, so a
user sees one variant however many ingress replicas serve them, and a new experiment (a new
name) reshuffles users independently of every earlier one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["assign", "bucket"]

_SCALE = float(2**64)


def bucket(experiment: str, unit: str) -> float:
    """The unit's fixed position in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(experiment: str, unit: str, weights: Mapping[str, float]) -> str:
    """The variant whose share of [0, 1) (weights in order, normalised) holds the unit's bucket."""
    position = bucket(experiment, unit) * sum(weights.values())
    running = 0.0
    for variant, weight in weights.items():
        running += weight
        if position < running:
            return variant
    return next(reversed(weights))  # rounding at the top edge
