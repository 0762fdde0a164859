"""Model routing offline: strong-model calls against accuracy on RouteLLM's labelled outcomes.

Data: ``../shared/data/routing`` (:mod:`spillover.training.routing_data`): per prompt, whether
Mixtral-8x7B-Instruct (cheap) and gpt-4-1106-preview (strong) answered correctly; GSM8K also has
both answers' text. Every figure is out of fold twice over:

* **outer folds** hold out whole groups: MMLU's 28 subjects in 4 folds of 7 (a router must carry
  to subjects it never saw), GSM8K's problems in 5 folds. A test fold is never used to fit or to
  choose anything; the figures pool the test folds, so every item is tested once.
* **inner folds**, inside each outer training part, give out-of-fold scores from which the
  threshold for the quality target (``--target``, 95% of the strong model's accuracy) is chosen
  (:func:`costlevers.routing.threshold.threshold_for`). That threshold is then applied to the
  test fold: the *deployed* share and quality are what a route would have done.

Methods in the same run: ``random`` (strong with the probability the training part needs; its
curve is the straight line a random router draws on average), ``linear`` and ``knn`` (the two
routers of :mod:`costlevers.routing.router`, fitted by :mod:`spillover.training.router`),
``cascade`` (GSM8K only, the answers being there: Mixtral's real answer text goes through the
rule checks and the learned answer verifier; every request pays the cheap call), and
``oracle`` (hindsight: the strong model only where it fixes the cheap one's answer).

Figures per dataset and method: the curve of strong-call share against accuracy (11 points),
APGR (the mean share of the strong-over-cheap gap recovered over strong shares 0..1),
``curve_strong_share_at_95`` (the least strong share at which the pooled test curve reaches the
target, with no threshold chosen: RouteLLM's way), the deployed ``strong_share_at_95``,
``quality_at_threshold`` (its accuracy over the strong model's) and ``saving_share_at_95``
(1 - its cost over sending everything to the strong model, at the price table's Together
Mixtral and OpenAI gpt-4-1106-preview prices; tokens are chars/4 estimates, MMLU answers one
token). Timing on this machine: the router's decision (the in-process MiniLM embedding of the
prompt, its shape features and the score) and the cascade's checks other than a second sample.

    python bench/routing.py [--target 0.95] [--no-record]
    python bench/routing.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402
    add_provenance_arguments,
    add_recompute_arguments,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)
from costlevers.routing.checks import CHECKS, run_checks  # noqa: E402
from costlevers.routing.features import shape_features  # noqa: E402
from costlevers.routing.threshold import quality_curve, threshold_for  # noqa: E402
from spillover.training.router import (  # noqa: E402
    DATA,
    cascade_order_scores,
    checks_fail,
    embed_prompts,
    fit_knn,
    fit_linear,
    fit_verifier,
    out_of_fold,
    router_inputs,
    verifier_inputs,
)
from spillover.training.routing_data import Labelled, assign_folds, load_gsm8k, load_mmlu  # noqa: E402

NAME = "routing"
TITLE = "Model routing: strong-model calls against accuracy (RouteLLM MMLU and GSM8K, held-out folds)"
OUTER_FOLDS = {"mmlu": 4, "gsm8k": 5}
INNER_FOLDS = 4
#: The method each dataset's headline key reports: what a routing route runs by default. MMLU's
#: files carry no answer text, so only the router can run there.
DEFAULT_METHOD = {"mmlu": "linear", "gsm8k": "cascade"}
PRICES = {"cheap": "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1", "strong": "gpt-4-1106-preview"}
PRICE_FILE = DATA.parent / "prices" / "model_prices_and_context_window.json"


def tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


def random_scores(items: list[Labelled]) -> np.ndarray:
    """A fixed uniform draw per item (seeded by its prompt), the same in every fold."""
    return np.array([random.Random(f"route:{i.prompt}").random() for i in items])


def fold_scores(dataset: str, items: list[Labelled], train: np.ndarray, test: np.ndarray, vectors: np.ndarray,
                features: np.ndarray, answers: np.ndarray | None, failed: np.ndarray | None) -> dict[str, tuple[np.ndarray, float]]:
    """Per method: the test fold's scores and the threshold chosen on the training part alone."""
    gains = np.array([i.gain for i in items])
    weak_ok, strong_ok = np.array([i.weak_ok for i in items]), np.array([i.strong_ok for i in items])
    groups = [items[j].group for j in train]
    wrong = ~weak_ok

    def chosen(inner_oof: np.ndarray) -> float:
        return threshold_for(inner_oof, weak_ok[train], strong_ok[train], TARGET)

    def inner(fit_score: Any) -> np.ndarray:
        return out_of_fold(groups, INNER_FOLDS, lambda tr, te: fit_score(train[tr], train[te]))

    linear = lambda tr, te: fit_linear(features[tr], gains[tr]).scores(features[te])  # noqa: E731
    knn = lambda tr, te: fit_knn(vectors[tr], gains[tr]).scores(vectors[te])  # noqa: E731
    rand = random_scores(items)
    out = {
        "random": (rand[test], chosen(rand[train])),
        "linear": (linear(train, test), chosen(inner(linear))),
        "knn": (knn(train, test), chosen(inner(knn))),
        "oracle": (gains[test].astype(float), 0.5),
    }
    if answers is not None and failed is not None:
        def cascade(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
            return cascade_order_scores(fit_verifier(answers[tr], wrong[tr].astype(int)).scores(answers[te]), failed[te])

        out["cascade"] = (cascade(train, test), chosen(inner(cascade)))
    return out


def evaluate(dataset: str, items: list[Labelled], vectors: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Every item's raw row (labels, tokens, per method its score and deployed choice) and the
    thresholds each outer fold chose."""
    features = router_inputs(items, vectors)
    answers = verifier_inputs(items) if dataset == "gsm8k" else None
    failed = np.array([checks_fail(i.weak_answer or "") for i in items]) if dataset == "gsm8k" else None
    fold_of = assign_folds([i.group for i in items], OUTER_FOLDS[dataset])
    fold = np.array([fold_of[i.group] for i in items])
    rows: list[dict[str, Any]] = [{} for _ in items]
    thresholds: dict[str, list[float]] = {}
    for k in range(OUTER_FOLDS[dataset]):
        train, test = np.nonzero(fold != k)[0], np.nonzero(fold == k)[0]
        for method, (scores, threshold) in fold_scores(dataset, items, train, test, vectors, features, answers, failed).items():
            thresholds.setdefault(method, []).append(round(threshold, 6) if np.isfinite(threshold) else str(threshold))
            for j, score in zip(test, scores):
                rows[j].setdefault("score", {})[method] = round(float(score), 6)
                rows[j].setdefault("strong", {})[method] = bool(score > threshold)
    for j, item in enumerate(items):
        rows[j].update({
            "dataset": dataset, "group": item.group, "fold": int(fold[j]), "weak_ok": item.weak_ok, "strong_ok": item.strong_ok,
            "prompt_tokens": tokens(item.prompt),
            "cheap_completion_tokens": tokens(item.weak_answer) if item.weak_answer else 1,
            "strong_completion_tokens": tokens(item.strong_answer) if item.strong_answer else 1,
        })
    return rows, thresholds


def time_decisions(items: list[Labelled], count: int) -> dict[str, list[float]]:
    """Milliseconds per decision on ``count`` prompts: the router (embedding in process, shape, score)
    and the cascade's checks with the answer verifier on GSM8K answers."""
    from costlevers.routing.router import BUILTIN_WEIGHTS, load_router
    from costlevers.routing.verifier import load_verifier
    from serving.embeddings import SentenceEncoder

    encoder = SentenceEncoder.builtin()
    linear, _ = load_router(BUILTIN_WEIGHTS)
    knn = fit_knn(embed_prompts(items), np.array([i.gain for i in items]))
    verifier, _ = load_verifier()
    sample = random.Random(7).sample(items, min(count, len(items)))
    encoder.encode([sample[0].prompt])  # warm
    # Each step in a loop of its own: BLAS threads left spinning by a kNN product would slow the
    # next prompt's embedding, which in a deployment runs in its own process.
    out: dict[str, list[float]] = {"embed": [], "linear": [], "knn": [], "checks": []}
    vectors = []
    for item in sample:
        started = time.perf_counter()
        vectors.append(encoder.encode([item.prompt])[0])
        out["embed"].append(round((time.perf_counter() - started) * 1000, 4))
    for name, router in (("linear", linear), ("knn", knn)):
        for item, vector in zip(sample, vectors):
            started = time.perf_counter()
            router.score(vector, shape_features({"messages": [{"role": "user", "content": item.prompt}]}, item.prompt))
            out[name].append(round((time.perf_counter() - started) * 1000, 4))
    checks = list(CHECKS.values())
    for item in (i for i in items if i.weak_answer):
        answer = {"choices": [{"message": {"content": item.weak_answer}, "finish_reason": "stop"}]}
        started = time.perf_counter()
        run_checks(checks, {"messages": [{"role": "user", "content": item.prompt}]}, answer)
        verifier.score(item.prompt, item.weak_answer or "")
        out["checks"].append(round((time.perf_counter() - started) * 1000, 4))
    return out


def _cost(row: dict[str, Any], side: str, prices: dict[str, dict[str, float]]) -> float:
    p = prices[side]
    return row["prompt_tokens"] * p["input"] + row[f"{side}_completion_tokens"] * p["output"]


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def method_figures(rows: list[dict[str, Any]], method: str, target: float, prices: dict[str, dict[str, float]]) -> dict[str, Any]:
    weak_ok = np.array([r["weak_ok"] for r in rows], dtype=float)
    strong_ok = np.array([r["strong_ok"] for r in rows], dtype=float)
    wa, sa = weak_ok.mean(), strong_ok.mean()
    n = len(rows)
    shares = np.arange(n + 1) / n
    if method == "random":  # a random router's expected curve: the straight line between the two models
        accuracy, cut = wa + shares * (sa - wa), np.ones(n + 1, dtype=bool)
    else:
        _, accuracy, cut = quality_curve(np.array([r["score"][method] for r in rows]), weak_ok, strong_ok)
    if method == "oracle":  # hindsight may take any subset, ties included
        cut[:] = True
    grid = np.linspace(0, 1, 101)
    apgr = float(np.mean((np.interp(grid, shares, accuracy) - wa) / (sa - wa)))
    reach = np.nonzero((accuracy >= target * sa - 1e-12) & cut)[0]
    strong = np.array([r["strong"][method] for r in rows])
    deployed_accuracy = float(np.where(strong, strong_ok, weak_ok).mean())
    pays_cheap = method == "cascade"
    cost = sum((_cost(r, "cheap", prices) if (pays_cheap or not s) else 0.0) + (_cost(r, "strong", prices) if s else 0.0)
               for r, s in zip(rows, strong))
    all_strong = sum(_cost(r, "strong", prices) for r in rows)
    return {
        "apgr": round(apgr, 4),
        "curve_strong_share_at_95": round(float(shares[reach[0]]), 4) if len(reach) else 1.0,
        "strong_share_at_95": round(float(strong.mean()), 4),
        "quality_at_threshold": round(deployed_accuracy / sa, 4),
        "accuracy_at_threshold": round(deployed_accuracy, 4),
        "saving_share_at_95": round(1 - cost / all_strong, 4),
        "curve": [[round(float(s), 2), round(float(np.interp(s, shares, accuracy)), 4)] for s in np.linspace(0, 1, 11)],
    }


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure, from the raw file's header (inputs, thresholds, timings) and rows alone."""
    target, prices = header["target"], header["prices"]
    figures: dict[str, Any] = {"target": target, "default_method": header["default_method"]}
    for dataset, method in header["default_method"].items():
        part = [r for r in rows if r["dataset"] == dataset]
        methods = {m: method_figures(part, m, target, prices) for m in part[0]["score"]}
        figures[dataset] = {
            "items": len(part), "groups": len({r["group"] for r in part}),
            "cheap_accuracy": round(float(np.mean([r["weak_ok"] for r in part])), 4),
            "strong_accuracy": round(float(np.mean([r["strong_ok"] for r in part])), 4),
            "strong_share_at_95": methods[method]["strong_share_at_95"],
            "quality_at_threshold": methods[method]["quality_at_threshold"],
            "methods": methods,
            "thresholds_by_fold": header["thresholds"][dataset],
        }
    timings = header["timings_ms"]
    with_embedding = {kind: [e + t for e, t in zip(timings["embed"], timings[kind])] for kind in ("linear", "knn")}
    figures["router_p50_ms"] = _percentile(with_embedding[header["default_router"]], 50)
    figures["router_p99_ms"] = _percentile(with_embedding[header["default_router"]], 99)
    figures["router_ms"] = {
        **{kind: {"p50": _percentile(with_embedding[kind], 50), "p99": _percentile(with_embedding[kind], 99)} for kind in ("linear", "knn")},
        # The prompt's embedding alone, and the score given an embedding the semantic cache already made.
        "embedding": {"p50": _percentile(timings["embed"], 50), "p99": _percentile(timings["embed"], 99)},
        **{f"{kind}_score_only": {"p50": _percentile(timings[kind], 50), "p99": _percentile(timings[kind], 99)} for kind in ("linear", "knn")},
    }
    figures["checks_ms"] = {"p50": _percentile(timings["checks"], 50), "p99": _percentile(timings["checks"], 99)}
    return figures


def report(figures: dict[str, Any]) -> str:
    lines = []
    for dataset in figures["default_method"]:
        d = figures[dataset]
        lines.append(f"**{dataset}**: {d['items']} items in {d['groups']} groups; cheap accuracy {d['cheap_accuracy']}, strong {d['strong_accuracy']}; "
                     f"default method {figures['default_method'][dataset]}: strong share {d['strong_share_at_95']} at quality {d['quality_at_threshold']}\n")
        lines.append(table(["method", "APGR", "strong share at 95% (curve)", "strong share (deployed threshold)", "quality / strong",
                            "saving vs all-strong"],
                           [(m, f["apgr"], f["curve_strong_share_at_95"], f["strong_share_at_95"], f["quality_at_threshold"], f["saving_share_at_95"])
                            for m, f in d["methods"].items()]))
        lines.append("")
    ms = figures["router_ms"]
    lines.append(table(["router decision ms (embedding included) p50", "p99", "embedding p50/p99", "linear score only p50/p99",
                        "knn score only p50/p99", "knn with embedding p50/p99", "checks + verifier ms p50", "p99"],
                       [(figures["router_p50_ms"], figures["router_p99_ms"], f"{ms['embedding']['p50']}/{ms['embedding']['p99']}",
                         f"{ms['linear_score_only']['p50']}/{ms['linear_score_only']['p99']}", f"{ms['knn_score_only']['p50']}/{ms['knn_score_only']['p99']}",
                         f"{ms['knn']['p50']}/{ms['knn']['p99']}", figures["checks_ms"]["p50"], figures["checks_ms"]["p99"])]))
    lines.append(f"\nTarget: {figures['target']:.0%} of the strong model's accuracy. Curve figures need no threshold; deployed ones use the "
                 "threshold chosen on the training part's inner out-of-fold scores, applied to the held-out fold.")
    return "\n".join(lines)


TARGET = 0.95


def main() -> None:
    global TARGET
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--target", type=float, default=TARGET, help="quality target: share of the strong model's accuracy")
    parser.add_argument("--timing-prompts", type=int, default=300, help="prompts the router decision is timed on")
    parser.add_argument("--no-record", action="store_true", help="print the table; write nothing")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, report)
    if not args.no_record:
        refuse_dirty_tree(args.allow_dirty)
    TARGET = args.target
    price_table = json.loads(PRICE_FILE.read_text())
    prices = {side: {"input": price_table[name]["input_cost_per_token"], "output": price_table[name]["output_cost_per_token"]}
              for side, name in PRICES.items()}
    datasets = {"mmlu": load_mmlu(DATA / "mmlu"), "gsm8k": load_gsm8k(DATA / "gsm8k" / "gsm8k_responses.csv")}
    # Timed first, before the fitting leaves the machine's BLAS threads warm and busy.
    timings = time_decisions(datasets["mmlu"] + datasets["gsm8k"], args.timing_prompts)
    rows: list[dict[str, Any]] = []
    thresholds = {}
    for dataset, items in datasets.items():
        part, thresholds[dataset] = evaluate(dataset, items, embed_prompts(items))
        rows += part
    header = {"target": TARGET, "prices": prices, "price_models": PRICES, "default_method": DEFAULT_METHOD, "default_router": "linear",
              "outer_folds": OUTER_FOLDS, "inner_folds": INNER_FOLDS, "thresholds": thresholds, "timings_ms": timings}
    publish(args, NAME, TITLE, header, rows, derive, report)


if __name__ == "__main__":
    main()
