"""The semantic cache's operating point, per route, earned from that route's own shadow checks.

A verifier calibrated on one distribution keeps its false-hit promise only there: on paraphrase
pairs from another domain its default threshold gave 2-3% false hits. So a route with
``semantic.steering`` does not trust a fixed threshold. It starts conservative (serving only at
the strictest rung of a ladder of verifier scores, or nothing: shadow only) and moves along the
ladder on evidence from its own traffic:

* every would-be hit at a rung looser than the one in force is a **probe**: it is not served,
  the request goes to the model as a miss anyway, and the cached answer is compared with the
  fresh one when it is whole (free evidence about the looser rungs);
* a share of the hits it serves is **checked**: the model is asked too and the answers compared
  (paid for; the share falls as evidence grows, ``share_halving / (share_halving + checks)``,
  never under ``min_share``), so the rung in force stays watched;
* a rung may be in force only while the Wilson upper bound (95%) of its false-hit rate, over the
  checks of the last ``window`` would-be hits that scored at or above it, is at most the
  route's ``target`` (1% by default). After each check the loosest such rung is put in force:
  a disagreement that lifts the bound tightens at once; loosening needs enough agreeing checks
  for the bound itself to come down (about 300 clean checks at 1%), which is the "enough new
  evidence".

A check that fails (the model errors, an answer is empty) is no evidence, never agreement.

**The judge is not perfect, and the bound says so.** A disagreement is counted whatever its
cause, so the share of checks judged "different" at a rung is ``d = f * s + (1 - f) * b``: ``f``
the true false-hit rate, ``s`` the judge's *sensitivity* (the share of non-interchangeable answer
pairs it calls different) and ``b`` its false-disagree rate. Since ``b >= 0``, ``f <= d / s``
always holds, whatever ``b`` is: the bound on ``f`` is the Wilson bound on ``d`` divided by ``s``
(a lower confidence bound of the judge's measured sensitivity; 1.0 treats the judge as catching
every false hit). A judge that calls many interchangeable pairs different (large ``b``) keeps
``d``, and so the bound, above the target at every rung: such a route serves nothing, which is
safe but useless, so the judge's cut-off is chosen to keep ``b`` well under the target (see
``bench/cache_shift.py``, which measures both rates on labelled answers).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Steering", "SteeringState", "wilson_upper"]


def wilson_upper(failures: int, n: int, z: float = 1.96) -> float:
    """The Wilson score interval's upper end for ``failures`` in ``n`` (1.0 with no evidence)."""
    if n <= 0:
        return 1.0
    p = failures / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


@dataclass(frozen=True)
class SteeringState:
    """What the route's metrics and the dashboard show."""

    threshold: float | None
    estimate: float | None
    bound: float
    checks: int
    paid_checks: int


class Steering:
    def __init__(self, ladder: Sequence[float], *, start: float | None, target: float = 0.01, window: int = 5000,
                 min_share: float = 0.02, share_halving: int = 200, judge_sensitivity: float = 1.0,
                 rng: random.Random | None = None) -> None:
        """``start``: the threshold in force before any evidence (None: shadow only);
        ``judge_sensitivity``: the share of false hits the judge is known to catch, at least."""
        if not 0 < judge_sensitivity <= 1:
            raise ValueError("judge_sensitivity must be in (0, 1]")
        self.ladder = sorted(set(ladder), reverse=True)  # strict first
        self.target = target
        self.judge_sensitivity = judge_sensitivity
        self._evidence: deque[tuple[float, bool]] = deque(maxlen=window)
        self._threshold: float | None = start
        self._min_share, self._halving = min_share, share_halving
        self._rng = rng or random.Random()
        self.paid_checks = 0

    @property
    def threshold(self) -> float | None:
        """The score a hit must reach to be served now; None: shadow only."""
        return self._threshold

    @property
    def loosest(self) -> float:
        return self.ladder[-1]

    def serves(self, score: float) -> bool:
        return self._threshold is not None and score >= self._threshold

    def probes(self, score: float) -> bool:
        """A would-be hit not served that still teaches something: a free check."""
        return score >= self.loosest and not self.serves(score)

    def check_served(self) -> bool:
        """Whether this served hit is also checked (paid)."""
        share = max(self._min_share, self._halving / (self._halving + len(self._evidence)))
        return self._rng.random() < share

    def record(self, score: float, agree: bool, *, paid: bool) -> None:
        self._evidence.append((score, agree))
        self.paid_checks += int(paid)
        self._threshold = self._operating_point()

    def _counts(self, threshold: float) -> tuple[int, int]:
        n = failures = 0
        for score, agree in self._evidence:
            if score >= threshold:
                n += 1
                failures += not agree
        return failures, n

    def _operating_point(self) -> float | None:
        """The loosest rung whose bound meets the target (rungs are nested: a looser rung's
        evidence includes every stricter one's)."""
        chosen = None
        for rung in self.ladder:
            if self._bound(*self._counts(rung)) <= self.target:
                chosen = rung
        return chosen

    def _bound(self, failures: int, n: int) -> float:
        """The upper 95% bound of the false-hit rate from ``failures`` disagreements in ``n`` checks."""
        return min(1.0, wilson_upper(failures, n) / self.judge_sensitivity)

    def state(self) -> SteeringState:
        """The evidence at the threshold in force; shadow only, at the rung nearest to being earned."""
        if self._threshold is not None:
            threshold = self._threshold
        else:
            threshold = min(self.ladder, key=lambda rung: (self._bound(*self._counts(rung)), -rung))
        failures, n = self._counts(threshold)
        return SteeringState(self._threshold, failures / n if n else None, self._bound(failures, n), len(self._evidence), self.paid_checks)
