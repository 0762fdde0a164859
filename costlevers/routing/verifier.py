"""The cascade's learned answer check: from a (prompt, cheap answer) pair, the probability that
the answer is wrong.

Written for worked answers with a number at the end (math word problems): it reads what a
careful reader would, namely whether the answer states a final number, whether its arithmetic
re-evaluates, whether it uses the numbers the question gives (a solution that ignores one
usually misread the problem), whether it hedges ("however", "assume", "approximately"),
whether its final number is the result it last computed, plus the prompt's shape
(:mod:`costlevers.routing.features`). A logistic model fitted by
``python -m spillover.training.router`` on Mixtral's GSM8K answers, served with numpy; its
weights file keeps out-of-fold scores so a quality target becomes a threshold at start.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from costlevers.routing.checks import arithmetic_slips, final_answer
from costlevers.routing.features import shape_features
from costlevers.routing.router import Calibration

__all__ = ["ANSWER_FEATURE_NAMES", "BUILTIN_VERIFIER", "AnswerVerifier", "answer_features", "load_verifier"]

BUILTIN_VERIFIER = Path(__file__).with_name("answer_verifier.npz")

ANSWER_FEATURE_NAMES = (
    "has_final", "log_steps", "any_wrong_step", "log_wrong_steps", "log_chars", "final_not_integer", "prompt_numbers_used",
    "log_prompt_numbers", "hedges", "final_copied_from_prompt", "final_is_last_result", "log_abs_final", "final_negative",
    "log_lines", "log_new_numbers",
)

_NUMBER = re.compile(r"\d[\d,]*\.?\d*")
_RESULT = re.compile(r"<<[^<>=]+=\s*(-?[\d,]*\.?\d+)\s*>>")
_HEDGE = re.compile(r"\b(however|assum|approximately|round|cannot|can't|not possible|impossible|unclear|actually|wait|mistake)", re.IGNORECASE)


def _numbers(text: str) -> set[float]:
    out = set()
    for raw in _NUMBER.findall(text):
        try:
            out.add(float(raw.replace(",", "").rstrip(".")))
        except ValueError:
            continue
    return out


def answer_features(prompt: str, answer: str) -> np.ndarray:
    """:data:`ANSWER_FEATURE_NAMES` then the prompt's shape features, as float32."""
    final = final_answer(answer)
    steps, wrong = arithmetic_slips(answer)
    given, used = _numbers(prompt), _numbers(answer)
    value = float(final) if final is not None else 0.0
    results = [float(r.replace(",", "")) for r in _RESULT.findall(answer)]
    values = (
        float(final is not None), math.log1p(steps), float(wrong > 0), math.log1p(wrong), math.log1p(len(answer)),
        float(final is not None and value != int(value)), len(given & used) / max(len(given), 1), math.log1p(len(given)),
        float(len(_HEDGE.findall(answer))), float(final is not None and value in given),
        float(final is not None and bool(results) and math.isclose(results[-1], value)), math.log1p(abs(value)), float(value < 0),
        math.log1p(answer.count("\n")), math.log1p(len(used - given)),
    )
    shape = shape_features({"messages": [{"role": "user", "content": prompt}]}, prompt)
    return np.concatenate([np.asarray(values, dtype=np.float32), shape])


@dataclass(frozen=True)
class AnswerVerifier:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def score(self, prompt: str, answer: str) -> float:
        """P(the answer is wrong)."""
        return float(self.scores(answer_features(prompt, answer)[None, :])[0])

    def scores(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


def load_verifier(path: Path = BUILTIN_VERIFIER) -> tuple[AnswerVerifier, Calibration]:
    with np.load(path) as z:
        return (AnswerVerifier(z["mean"], z["scale"], z["coef"], float(z["intercept"])),
                Calibration(z["oof_scores"], z["oof_weak_ok"], z["oof_strong_ok"]))
