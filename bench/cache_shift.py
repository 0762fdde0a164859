"""Semantic cache under traffic it was not fitted on: a steered threshold against fixed ones, the
shadow judge's own error rates, and whether the hit verifier beats cosine with the guards alone.

Three parts, one run, raw outcomes saved (``--recompute`` rebuilds every figure):

1. **The judge** (:class:`costlevers.cache.agreement.AnswerJudge`, as the shadow checks run it) on
   labelled answer pairs from ``../shared/data``: Arena-Hard (gpt-4-0314's and gpt-4-0613's
   answers to the same question are *interchangeable*; gpt-4-0314's answer to one question and
   gpt-4-0613's to another question of the same topic cluster are *not*) and GSM8K (Mixtral's and
   GPT-4's worked answers to the same problem: interchangeable when both are right, not when one
   is wrong). Figures: false-agree and false-disagree rates per set.
2. **Verifier against cosine + guards** on QQP's held-back test split (partner-only protocol of
   ``spillover.training.protocols``): the verifier at its shipped threshold, cosine + guards (a
   pair that trips any guard of ``costlevers.cache.guards`` never hits) at the lowest cosine
   threshold keeping false hits <= 1% on the four training folds; both measured on the test split.
   Also each method's duplicate hit rate at equal false-hit ceilings on the test split.
3. **The replay.** A stream of queries none of which the verifier was fitted on: every text of
   QQP's test split (its pairs' partners at random positions, so about half find their partner
   already cached) mixed with out-of-domain questions (MuSiQue and HotpotQA questions, the first
   line of each Arena-Hard prompt), seeded order. Each query looks up the earlier ones (five
   nearest by cosine >= 0.75, the verifier scores them) and is then cached. Ground truth: a hit is
   a duplicate when QQP's labels join the two questions, or the texts are equal. Policies on the
   same stream: ``fixed_loose`` (serve at 0.7, over-loose), ``fixed_default`` (the verifier's
   calibrated threshold) and ``steered`` (:class:`costlevers.cache.steering.Steering`, started at
   0.7 like ``fixed_loose``, target 1%). The steered policy's checks are judged as the live judge
   would: the ground truth flipped at the judge's false-agree rate (a false hit judged fine) and
   false-disagree rate measured in part 1 on Arena-Hard (long answers), with a seeded generator.
   The stream's texts are questions without answers, so this is the one modelled step.
   Figures: served false-hit rate (false hits over served hits) over the whole stream and its
   worst 1,000-query window after the first 2,000, the duplicate hit rate (served true hits over
   queries whose duplicate was already cached), and paid shadow calls over queries.

The data's limits, stated: QQP's test split is held back from the verifier but is the same kind
of question; the out-of-domain questions add near-misses of other kinds but no paraphrases, so
the replay's duplicates are all QQP's. ``../shared/data`` has no labelled paraphrases of
another domain.

    python bench/cache_shift.py [--no-record]
    python bench/cache_shift.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import random
import sys
from collections.abc import Sequence
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
from costlevers.cache.agreement import AnswerJudge  # noqa: E402
from costlevers.cache.config import SemanticCacheConfig, SteeringConfig  # noqa: E402
from costlevers.cache.guards import guard_values, profile  # noqa: E402
from costlevers.cache.steering import Steering  # noqa: E402
from costlevers.cache.verifier import HitVerifier  # noqa: E402
from spillover.training.pairs import DuplicateGraph, Pair, cached_embeddings, encode_builtin, load_pairs, split_pairs  # noqa: E402
from stores.builtin_models import cache_dir  # noqa: E402

NAME = "cache"
TITLE = "Semantic cache: a steered threshold on unfitted traffic, the shadow judge's errors, verifier against cosine + guards"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
QQP = SHARED / "semantic_cache" / "qqp_pairs_dev.jsonl"
EMBED_CACHE = cache_dir() / "bench" / "cache-shift-minilm.npz"
LOOSE = 0.7
K, MIN_COSINE = 5, 0.75
WINDOW, WARMUP = 1000, 2000
LEVELS = (0.005, 0.01, 0.02)
SEED = 7


def vectors_of(texts: Sequence[str]) -> dict[str, np.ndarray]:
    return cached_embeddings(list(dict.fromkeys(texts)), encode_builtin, EMBED_CACHE)


# 1. the judge

def judge_pairs() -> list[dict[str, Any]]:
    """(set, text_a, text_b, interchangeable) from Arena-Hard and GSM8K."""
    answers: dict[str, dict[str, str]] = {}
    for model in ("gpt-4-0314", "gpt-4-0613"):
        for line in (SHARED / "prompts" / "arena_hard_answers" / f"{model}.jsonl").read_text().splitlines():
            row = json.loads(line)
            answers.setdefault(row["uid"], {})[model] = row["messages"][-1]["content"]["answer"]
    clusters: dict[str, list[str]] = {}
    for line in (SHARED / "prompts" / "arena_hard_questions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["uid"] in answers and len(answers[row["uid"]]) == 2:
            clusters.setdefault(row["cluster"], []).append(row["uid"])
    out = []
    for uids in clusters.values():
        for i, uid in enumerate(uids):
            out.append({"set": "arena_hard", "a": answers[uid]["gpt-4-0314"], "b": answers[uid]["gpt-4-0613"], "same": True})
            if len(uids) > 1:
                other = uids[(i + 1) % len(uids)]
                out.append({"set": "arena_hard", "a": answers[uid]["gpt-4-0314"], "b": answers[other]["gpt-4-0613"], "same": False})
    with (SHARED / "routing" / "gsm8k" / "gsm8k_responses.csv").open() as f:
        rows = list(csv.DictReader(f))
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    for row in rows[:600]:
        weak_ok, strong_ok = row[weak] == "True", row[strong] == "True"
        if weak_ok or strong_ok:
            out.append({"set": "gsm8k", "a": row[f"{weak}_response"], "b": row[f"{strong}_response"], "same": weak_ok and strong_ok})
    return out


def judge_outcomes(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    vectors = vectors_of([t for p in pairs for t in (p["a"], p["b"])])

    async def embed(text: str) -> np.ndarray:
        return vectors[text]

    judge = AnswerJudge(embed, agree_cosine=SemanticCacheConfig().shadow_agree_cosine)

    async def run() -> list[dict[str, Any]]:
        return [{"part": "judge", "set": p["set"], "same": p["same"], "agree": await judge.agree(p["a"], p["b"])} for p in pairs]

    return asyncio.run(run())


# 2. verifier against cosine + guards

def pair_outcomes(pairs: list[Pair], split: str, graph: DuplicateGraph, vectors: dict[str, np.ndarray], verifier: HitVerifier) -> list[dict[str, Any]]:
    out = []
    for p in pairs:
        va, vb = vectors[p.text_a], vectors[p.text_b]
        verified = float(verifier.probabilities(verifier.features(p.text_b, vb, [p.text_a], va[None, :]))[0])
        tripped = any(guard_values(profile(p.text_a), profile(p.text_b)))
        out.append({"part": "pairs", "split": split, "label": p.label, "correct": graph.duplicates(p.text_a, p.text_b),
                    "verifier": round(verified, 6), "cosine": round(float(va @ vb), 6), "guarded": tripped})
    return out


def _rates(rows: list[dict[str, Any]], hit: Sequence[bool]) -> dict[str, float]:
    dup = [r for r, h in zip(rows, hit) if r["label"] == 1]
    hits_dup = sum(h and r["correct"] for r, h in zip(rows, hit) if r["label"] == 1)
    false = sum(h and not r["correct"] for r, h in zip(rows, hit) if r["label"] == 0)
    non = sum(r["label"] == 0 for r in rows)
    return {"duplicate_hit_rate": round(hits_dup / max(1, len(dup)), 4), "false_hit_rate": round(false / max(1, non), 4)}


def _score(row: dict[str, Any], method: str) -> float:
    return row["verifier"] if method == "verifier" else (-1.0 if row["guarded"] else row["cosine"])


def _lowest_safe(rows: list[dict[str, Any]], method: str, ceiling: float) -> float:
    """The lowest threshold at which the false-hit rate (over label-0 pairs) stays <= ceiling."""
    non = max(1, sum(r["label"] == 0 for r in rows))
    best, false = 1.01, 0
    for row in sorted(rows, key=lambda r: -_score(r, method)):
        false += row["label"] == 0 and not row["correct"]
        if false / non > ceiling:
            break
        best = _score(row, method)
    return best


# 3. the replay

def replay_stream() -> tuple[list[str], DuplicateGraph, str]:
    pairs = load_pairs(QQP)
    test = split_pairs(pairs)["test"]
    texts = list(dict.fromkeys(t for p in test for t in (p.text_a, p.text_b)))
    outside = [json.loads(line)["question"] for name in ("musique", "hotpotqa")
               for line in (SHARED / "compression" / f"{name}.jsonl").read_text().splitlines()]
    outside += [json.loads(line)["prompt"].strip().split("\n")[0][:300] for line in (SHARED / "prompts" / "arena_hard_questions.jsonl").read_text().splitlines()]
    stream = texts + [t for t in dict.fromkeys(outside) if t not in set(texts)]
    random.Random(SEED).shuffle(stream)
    digest = hashlib.sha1("\n".join(stream).encode()).hexdigest()[:12]
    return stream, DuplicateGraph(pairs), digest


def replay_outcomes(stream: list[str], graph: DuplicateGraph, verifier: HitVerifier, false_agree: float, false_disagree: float) -> list[dict[str, Any]]:
    vectors = vectors_of(stream)
    matrix = np.stack([vectors[t] for t in stream])
    steering = Steering(SteeringConfig().ladder, start=LOOSE, target=SteeringConfig().target, rng=random.Random(SEED))
    judge_rng = random.Random(SEED + 1)
    out = []
    seen: set[str] = set()  # the duplicate components already cached
    for i, query in enumerate(stream):
        component = graph.component(query)
        row: dict[str, Any] = {"part": "replay", "i": i, "available": component in seen}
        seen.add(component)
        if i:
            cos = matrix[:i] @ matrix[i]
            nearest = [int(j) for j in np.argsort(-cos)[:K] if cos[j] >= MIN_COSINE]
            if nearest:
                scores = verifier.probabilities(verifier.features(query, matrix[i], [stream[j] for j in nearest], matrix[nearest]))
                best = int(np.argmax(scores))
                candidate = stream[nearest[best]]
                row |= {"score": round(float(scores[best]), 6), "duplicate": candidate == query or graph.duplicates(query, candidate)}
        score, duplicate = row.get("score"), row.get("duplicate", False)
        row["threshold"] = steering.threshold
        if score is not None and (steering.serves(score) or steering.probes(score)):
            served = steering.serves(score)
            paid = served and steering.check_served()
            if paid or not served:
                wrong = judge_rng.random() < (false_disagree if duplicate else false_agree)
                steering.record(score, duplicate != wrong, paid=paid)
            row |= {"steered_served": served, "paid_check": paid}
        out.append(row)
    return out


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure, from the raw file's header and rows alone."""
    figures: dict[str, Any] = {"judge": {}, "verifier_vs_guards": {}, "shift": {}}
    for name in ("arena_hard", "gsm8k"):
        part = [r for r in rows if r["part"] == "judge" and r["set"] == name and r["agree"] is not None]
        same, other = [r for r in part if r["same"]], [r for r in part if not r["same"]]
        figures["judge"][name] = {"pairs": len(part), "false_agree_rate": round(sum(r["agree"] for r in other) / max(1, len(other)), 4),
                                  "false_disagree_rate": round(sum(not r["agree"] for r in same) / max(1, len(same)), 4)}
    train = [r for r in rows if r["part"] == "pairs" and r["split"] != "test"]
    test = [r for r in rows if r["part"] == "pairs" and r["split"] == "test"]
    guards_threshold = _lowest_safe(train, "guards", 0.01)
    figures["verifier_vs_guards"] = {
        "verifier": {"threshold": header["verifier_threshold"], **_rates(test, [r["verifier"] >= header["verifier_threshold"] for r in test])},
        "cosine_guards": {"threshold": guards_threshold, **_rates(test, [_score(r, "guards") >= guards_threshold for r in test])},
        "equal_false_hit": {f"{level:g}": {m: _rates(test, [_score(r, m) >= _lowest_safe(test, m, level) for r in test])["duplicate_hit_rate"]
                                          for m in ("verifier", "guards")} for level in LEVELS},
    }
    vg = figures["verifier_vs_guards"]
    # The simpler rule ships only if its threshold, chosen on the training folds, holds 1% on the
    # test split and it then hits at least as many duplicates as the verifier at its own.
    simpler_holds = vg["cosine_guards"]["false_hit_rate"] <= 0.01
    vg["ship"] = "cosine_guards" if simpler_holds and vg["cosine_guards"]["duplicate_hit_rate"] >= vg["verifier"]["duplicate_hit_rate"] \
        else "verifier"
    replay = [r for r in rows if r["part"] == "replay"]
    available = max(1, sum(r["available"] for r in replay))
    for policy in ("fixed_loose", "fixed_default", "steered"):
        def served(r: dict[str, Any], policy: str = policy) -> bool:
            if "score" not in r:
                return False
            if policy == "steered":
                return bool(r.get("steered_served"))
            return r["score"] >= (LOOSE if policy == "fixed_loose" else header["verifier_threshold"])

        hits = [r for r in replay if served(r)]
        false = [r for r in hits if not r["duplicate"]]
        windows = []
        for start in range(WARMUP, len(replay) - WINDOW + 1, WINDOW // 2):
            w = [r for r in replay[start:start + WINDOW] if served(r)]
            windows.append(sum(not r["duplicate"] for r in w) / len(w) if w else 0.0)
        figures["shift"][policy] = {
            "served_false_hit_rate": round(len(false) / max(1, len(hits)), 4),
            "max_window_false_hit_rate": round(max(windows), 4) if windows else 0.0,
            "duplicate_hit_rate": round(sum(r["duplicate"] for r in hits) / available, 4),
            "served_hits": len(hits),
        }
    # Per rung: how often a would-be hit at or above it was not a known duplicate (the evidence
    # a steered route would see with a perfect judge).
    scored = [r for r in replay if "score" in r]
    figures["shift"]["by_rung"] = {
        f"{rung:g}": {"would_be_hits": len(at), "not_known_duplicate": round(sum(not r["duplicate"] for r in at) / len(at), 4) if at else None}
        for rung in header["ladder"] for at in [[r for r in scored if r["score"] >= rung]]
    }
    steered = figures["shift"]["steered"]
    steered["shadow_call_share"] = round(sum(bool(r.get("paid_check")) for r in replay) / max(1, len(replay)), 4)
    steered["final_threshold"] = replay[-1]["threshold"] if replay else None
    figures["shift"].update({k: steered[k] for k in ("served_false_hit_rate", "max_window_false_hit_rate", "duplicate_hit_rate",
                                                     "shadow_call_share")})
    figures["shift"]["queries"] = len(replay)
    figures["goal_met"] = steered["served_false_hit_rate"] <= 0.01 and steered["max_window_false_hit_rate"] <= 0.01
    return figures


def report(figures: dict[str, Any]) -> str:
    judge = figures["judge"]
    parts = [table(["judge set", "pairs", "false agree", "false disagree"],
                   [[k, v["pairs"], v["false_agree_rate"], v["false_disagree_rate"]] for k, v in judge.items()])]
    vg = figures["verifier_vs_guards"]
    parts.append(table(["QQP test split", "threshold", "duplicate hit rate", "false hit rate"],
                       [[m, vg[m]["threshold"], vg[m]["duplicate_hit_rate"], vg[m]["false_hit_rate"]] for m in ("verifier", "cosine_guards")]))
    parts.append(table(["false-hit ceiling (test split)", "verifier dup. hits", "cosine+guards dup. hits"],
                       [[k, v["verifier"], v["guards"]] for k, v in vg["equal_false_hit"].items()]))
    shift = figures["shift"]
    parts.append(table(["replay policy", "served false-hit rate", "worst window", "duplicate hit rate", "served hits"],
                       [[p, shift[p]["served_false_hit_rate"], shift[p]["max_window_false_hit_rate"], shift[p]["duplicate_hit_rate"],
                         shift[p]["served_hits"]] for p in ("fixed_loose", "fixed_default", "steered")]))
    parts.append(f"Replay of {shift['queries']} queries; steered: shadow calls {shift['shadow_call_share']:.2%} of queries, final threshold "
                 f"{shift['steered']['final_threshold']}. Ship: {vg['ship']}. Goal (served false hits <= 1% overall and in every window after "
                 f"warm-up) met: {figures['goal_met']}")
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--no-record", action="store_true", help="print the tables; write nothing")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, report)
    if not args.no_record:
        refuse_dirty_tree(args.allow_dirty)
    verifier = HitVerifier.load()
    print("judging labelled answer pairs ...", flush=True)
    rows = judge_outcomes(judge_pairs())
    arena = [r for r in rows if r["set"] == "arena_hard" and r["agree"] is not None]
    false_agree = sum(r["agree"] for r in arena if not r["same"]) / max(1, sum(not r["same"] for r in arena))
    false_disagree = sum(not r["agree"] for r in arena if r["same"]) / max(1, sum(r["same"] for r in arena))
    print("scoring QQP pairs ...", flush=True)
    pairs = load_pairs(QQP)
    graph = DuplicateGraph(pairs)
    by_split = split_pairs(pairs)
    vectors = vectors_of([t for p in pairs for t in (p.text_a, p.text_b)])
    for split, part in by_split.items():
        rows += pair_outcomes(part, split, graph, vectors, verifier)
    print("replaying ...", flush=True)
    stream, graph, digest = replay_stream()
    rows += replay_outcomes(stream, graph, verifier, false_agree, false_disagree)
    header = {"verifier_threshold": verifier.threshold, "judge_false_agree": false_agree, "judge_false_disagree": false_disagree,
              "stream_digest": digest, "loose": LOOSE, "seed": SEED, "ladder": SteeringConfig().ladder, "target": SteeringConfig().target}
    publish(args, NAME, TITLE, header, rows, derive, report)


if __name__ == "__main__":
    main()
