"""Semantic cache under traffic it was not fitted on: a steered threshold against fixed ones, the
shadow judge's own error rates, and whether the hit verifier beats cosine with the guards alone.

Three parts, one run, raw outcomes saved (``--recompute`` rebuilds every figure):

1. **The judge** (:class:`costlevers.cache.agreement.AnswerJudge`: structured and short answers by
   their text, long ones by their embeddings' cosine) on labelled answer pairs from
   ``../shared/data``: Arena-Hard (gpt-4-0314's and gpt-4-0613's answers to the same question are
   *interchangeable*; gpt-4-0314's answer to one question and gpt-4-0613's to another question of
   the same topic cluster are *not*) and GSM8K (Mixtral's and GPT-4's worked answers to the same
   problem: interchangeable when both are right, not when one is wrong). Each set is halved (by
   a hash of the Arena-Hard cluster, of the GSM8K problem): the cosine cut-off is chosen on
   Arena-Hard's **fit** half (the lowest cosine of an interchangeable pair there), and the
   false-agree and false-disagree rates are stated per half. The steering's judge sensitivity is
   the fit half's lower 95% bound; the replay's judge errs at the **held** half's rates.
2. **Verifier against cosine + guards** (partner-only protocol of
   ``spillover.training.protocols``), twice: the shipped verifier on QQP's test split (cosine +
   guards at the lowest cosine keeping false hits <= 1% on the four training folds), and the
   verifier trained without the held-out topics on those topics' pairs (cosine + guards' threshold
   from the other topics' fold pairs). Also each method's duplicate hit rate at equal false-hit
   ceilings on the held-back pairs. The verifier ships only if it hits more duplicates at most
   ceilings on both.
3. **The replay: topics the verifier never saw.** QQP's questions are grouped into 20 topics by
   k-means over their components' embeddings, fitted on the training folds only
   (:mod:`spillover.training.topics`); four topics are drawn with a fixed seed and dropped from
   training: ``python -m spillover.training.cache_verifier --data ../shared/data/semantic_cache/qqp_pairs_dev.jsonl
   --hold-out-topics 4 --out bench/results/cache.verifier.npz`` (checked here against the
   recomputed split). The stream is every distinct text of the held-out topics' pairs, in a seeded
   order; each query looks up the earlier ones and is then cached. QQP labels only some pairs,
   and an unlabelled neighbour counted as a false hit overstates them (the last replay's 12-26%
   "false hits" at high scores were mostly such), so a query's candidates are the earlier texts
   whose relation to it the labels settle: known duplicates (a chain of label-1 pairs) and known
   non-duplicates (a label-0 pair joins their duplicate components); the five nearest of them by
   cosine >= 0.75 go to the verifier. Policies on the same stream: ``fixed_loose`` (serve at 0.7,
   over-loose), ``fixed_default`` (the held-out-topic verifier's own calibrated threshold) and
   ``steered`` (:class:`costlevers.cache.steering.Steering` with the shipped configuration,
   started at 0.7 like ``fixed_loose``, target 1%). The steered policy's checks are judged as the
   measured judge would: a false hit called different at the judge's held-half sensitivity, a
   duplicate at its held-half false-disagree rate (seeded generator). The stream's texts are
   questions without answers, so this is the one modelled step. Beside it, as a diagnostic,
   ``steered_perfect_judge``: the same steering with a judge that never errs, which tells the
   steering's own limits (how much evidence a rung needs) from the judge's.
   Figures: served false-hit rate (false hits over served hits) over the whole stream and its
   worst 1,000-query window (step 500) after the first 2,000, per 1,000 queries over time, the
   duplicate hit rate (served true hits over queries whose duplicate was already cached), and
   paid shadow calls over queries.

The data's limits, stated: the held-out topics are QQP questions still (another domain of
labelled paraphrases is not in ``../shared/data``); the judge's rates come from answers by two
GPT-4 versions, not one model answering two paraphrases.

    python bench/cache_shift.py [--no-record]
    python bench/cache_shift.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
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
from costlevers.cache.config import SteeringConfig  # noqa: E402
from costlevers.cache.guards import guard_values, profile  # noqa: E402
from costlevers.cache.steering import Steering, wilson_upper  # noqa: E402
from costlevers.cache.verifier import HitVerifier  # noqa: E402
from spillover.training.cache_verifier import embed_all  # noqa: E402
from spillover.training.pairs import DuplicateGraph, Pair, cached_embeddings, encode_builtin, load_pairs, split_pairs  # noqa: E402
from spillover.training.topics import TopicSplit, topic_split  # noqa: E402
from stores.builtin_models import cache_dir  # noqa: E402

NAME = "cache"
TITLE = "Semantic cache: a steered threshold on unfitted traffic, the shadow judge's errors, verifier against cosine + guards"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
QQP = SHARED / "semantic_cache" / "qqp_pairs_dev.jsonl"
EMBED_CACHE = cache_dir() / "bench" / "cache-shift-minilm.npz"
#: The verifier trained with four of twenty topics held out (see the module doc for the command).
TOPIC_VERIFIER = Path(__file__).resolve().parent / "results" / "cache.verifier.npz"
LOOSE = 0.7
K, MIN_COSINE = 5, 0.75
WINDOW, WARMUP = 1000, 2000
LEVELS = (0.005, 0.01, 0.02)
POLICIES = ("fixed_loose", "fixed_default", "steered", "steered_perfect_judge")
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
    for cluster, uids in clusters.items():
        for i, uid in enumerate(uids):
            half = half_of(cluster)
            out.append({"set": "arena_hard", "half": half, "a": answers[uid]["gpt-4-0314"], "b": answers[uid]["gpt-4-0613"], "same": True})
            if len(uids) > 1:
                other = uids[(i + 1) % len(uids)]
                out.append({"set": "arena_hard", "half": half, "a": answers[uid]["gpt-4-0314"], "b": answers[other]["gpt-4-0613"],
                            "same": False})
    with (SHARED / "routing" / "gsm8k" / "gsm8k_responses.csv").open() as f:
        rows = list(csv.DictReader(f))
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    for row in rows[:600]:
        weak_ok, strong_ok = row[weak] == "True", row[strong] == "True"
        if weak_ok or strong_ok:
            out.append({"set": "gsm8k", "half": half_of(row["prompt"]), "a": row[f"{weak}_response"], "b": row[f"{strong}_response"],
                        "same": weak_ok and strong_ok})
    return out


def half_of(key: str) -> str:
    """``fit`` or ``held``: the judge's cut-off is chosen on one half, its errors measured on the other.
    Salted: the shared files were themselves cut by a hash of the text (every GSM8K prompt there
    has an even first SHA-1 byte), so the bare hash would put them all in one half."""
    return "fit" if hashlib.sha1(f"judge-half:{key}".encode()).digest()[0] % 2 == 0 else "held"


def judge_outcomes(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per labelled answer pair: the verdict the text alone gives, else the answers' cosine."""
    vectors = vectors_of([t for p in pairs for t in (p["a"], p["b"])])
    judge = AnswerJudge(_no_embedding)
    out = []
    for p in pairs:
        verdict = judge.without_embedding(p["a"], p["b"])
        out.append({"part": "judge", "set": p["set"], "half": p["half"], "same": p["same"], "text_verdict": verdict,
                    "cosine": None if verdict is not None else round(float(vectors[p["a"]] @ vectors[p["b"]]), 6)})
    return out


async def _no_embedding(text: str) -> np.ndarray:
    raise AssertionError("the cosine is taken from the cached vectors")


def judge_cutoff(rows: list[dict[str, Any]]) -> float:
    """The agree cut-off, from Arena-Hard's fit half alone: the lowest cosine of an interchangeable
    pair there, so the judge calls none of them different (its false-disagree rate is what keeps a
    steered route from ever earning a rung; see costlevers.cache.steering)."""
    return min(r["cosine"] for r in rows if r["part"] == "judge" and r["set"] == "arena_hard" and r["half"] == "fit" and r["same"]
               and r["cosine"] is not None)


def judge_says_same(row: dict[str, Any], cutoff: float) -> bool:
    return row["text_verdict"] if row["text_verdict"] is not None else row["cosine"] >= cutoff


def judge_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The cut-off, and per set and half the false-agree and false-disagree rates with their
    sizes; the steering's sensitivity is the fit half's lower 95% bound (chosen before the held
    half is looked at), the replay's judge errs at the held half's rates."""
    cutoff = judge_cutoff(rows)
    out: dict[str, Any] = {"agree_cosine": cutoff}
    for name in ("arena_hard", "gsm8k"):
        for half in ("fit", "held"):
            part = [r for r in rows if r["part"] == "judge" and r["set"] == name and r["half"] == half]
            same, other = [r for r in part if r["same"]], [r for r in part if not r["same"]]
            caught = sum(not judge_says_same(r, cutoff) for r in other)
            out[f"{name}_{half}"] = {
                "interchangeable_pairs": len(same), "other_pairs": len(other),
                "false_agree_rate": round(1 - caught / max(1, len(other)), 4),
                "false_disagree_rate": round(sum(not judge_says_same(r, cutoff) for r in same) / max(1, len(same)), 4),
                "sensitivity_lower": round(1 - wilson_upper(len(other) - caught, len(other)), 4),
            }
    fit, held = out["arena_hard_fit"], out["arena_hard_held"]
    out["steering"] = {"sensitivity_lower": fit["sensitivity_lower"], "sensitivity": round(1 - held["false_agree_rate"], 4),
                       "false_disagree": held["false_disagree_rate"]}
    return out


# 2. verifier against cosine + guards

def pair_outcomes(pairs: list[Pair], which: str, split: str, graph: DuplicateGraph, vectors: dict[str, np.ndarray],
                  verifier: HitVerifier) -> list[dict[str, Any]]:
    out = []
    for p in pairs:
        va, vb = vectors[p.text_a], vectors[p.text_b]
        verified = float(verifier.probabilities(verifier.features(p.text_b, vb, [p.text_a], va[None, :]))[0])
        tripped = any(guard_values(profile(p.text_a), profile(p.text_b)))
        out.append({"part": "pairs", "set": which, "split": split, "label": p.label, "correct": graph.duplicates(p.text_a, p.text_b),
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

def topic_verifier(pairs: list[Pair], vectors: dict[str, np.ndarray]) -> tuple[HitVerifier, TopicSplit]:
    """The verifier trained without the held-out topics, and the topic split it was trained under
    (recomputed here and checked against the verifier's own record of it)."""
    verifier = HitVerifier.load(TOPIC_VERIFIER)
    meta = verifier.meta
    topics = topic_split(pairs, vectors, topics=int(meta["topics"]), held_out=len(meta["held_out_topics"]), seed=int(meta["seed"]))
    if topics.digest != meta["held_out_digest"] or list(topics.held_out) != meta["held_out_topics"]:
        raise SystemExit(f"{TOPIC_VERIFIER} was trained under another topic split; retrain it (see the module doc)")
    return verifier, topics


def replay_stream(pairs: list[Pair], topics: TopicSplit) -> tuple[list[str], str]:
    """Every distinct text of the held-out topics' pairs, in a seeded order."""
    stream = list(dict.fromkeys(t for p in pairs if topics.is_held_out(p) for t in (p.text_a, p.text_b)))
    random.Random(SEED).shuffle(stream)
    return stream, hashlib.sha1("\n".join(stream).encode()).hexdigest()[:12]


def known_relations(pairs: list[Pair], graph: DuplicateGraph) -> dict[str, set[str]]:
    """Per duplicate component, the components whose relation to it QQP's labels settle: itself
    (known duplicates) and those a label-0 pair joins it to (known non-duplicates)."""
    known: dict[str, set[str]] = {}
    for p in pairs:
        a, b = graph.component(p.text_a), graph.component(p.text_b)
        known.setdefault(a, {a}).add(b)
        known.setdefault(b, {b}).add(a)
    return known


def replay_outcomes(stream: list[str], pairs: list[Pair], graph: DuplicateGraph, vectors: dict[str, np.ndarray],
                    verifier: HitVerifier, judge: dict[str, float]) -> list[dict[str, Any]]:
    """Each query looks up the earlier ones whose relation to it is labelled; the steered policy's
    checks are judged at the judge's held-back error rates."""
    matrix = np.stack([vectors[t] for t in stream])
    known = known_relations(pairs, graph)
    config = SteeringConfig()
    # The measured judge (held-half rates), and the same steering with a judge that never errs:
    # a diagnostic that tells the steering's own limits from the judge's.
    steered = {name: (Steering(config.ladder, start=LOOSE, target=config.target, window=config.window, min_share=config.min_share,
                               share_halving=config.share_halving, judge_sensitivity=sensitivity_lower, rng=random.Random(SEED)),
                      random.Random(SEED + 1), false_disagree, sensitivity)
               for name, sensitivity_lower, false_disagree, sensitivity in (
                   ("steered", judge["sensitivity_lower"], judge["false_disagree"], judge["sensitivity"]),
                   ("steered_perfect_judge", 1.0, 0.0, 1.0))}
    out = []
    earlier: dict[str, list[int]] = {}  # component -> positions of its texts already cached
    for i, query in enumerate(stream):
        component = graph.component(query)
        row: dict[str, Any] = {"part": "replay", "i": i, "available": bool(earlier.get(component))}
        labelled = [j for c in known.get(component, {component}) for j in earlier.get(c, [])]
        if labelled:
            cos = matrix[labelled] @ matrix[i]
            ranked = [labelled[k] for k in np.argsort(-cos)[:K] if cos[k] >= MIN_COSINE]
            if ranked:
                scores = verifier.probabilities(verifier.features(query, matrix[i], [stream[j] for j in ranked], matrix[ranked]))
                best = int(np.argmax(scores))
                row |= {"score": round(float(scores[best]), 6), "duplicate": graph.duplicates(query, stream[ranked[best]])}
        earlier.setdefault(component, []).append(i)
        score, duplicate = row.get("score"), row.get("duplicate", False)
        for name, (steering, rng, false_disagree, sensitivity) in steered.items():
            row[f"{name}_threshold"] = steering.threshold
            if score is not None and (steering.serves(score) or steering.probes(score)):
                served = steering.serves(score)
                paid = served and steering.check_served()
                if paid or not served:
                    # The judge calls a false hit different at its sensitivity, an
                    # interchangeable pair at its false-disagree rate.
                    differs = rng.random() < (false_disagree if duplicate else sensitivity)
                    steering.record(score, not differs, paid=paid)
                row |= {f"{name}_served": served, f"{name}_paid": paid}
        out.append(row)
    return out


def _comparison(train: list[dict[str, Any]], test: list[dict[str, Any]], verifier_threshold: float) -> dict[str, Any]:
    """Verifier at its own threshold, cosine + guards at the training side's 1% threshold, and both
    at equal false-hit ceilings on ``test``; ``verifier_wins``: at how many ceilings it hits more."""
    guards_threshold = _lowest_safe(train, "guards", 0.01)
    equal = {f"{level:g}": {m: _rates(test, [_score(r, m) >= _lowest_safe(test, m, level) for r in test])["duplicate_hit_rate"]
                            for m in ("verifier", "guards")} for level in LEVELS}
    return {
        "pairs": len(test),
        "verifier": {"threshold": verifier_threshold, **_rates(test, [r["verifier"] >= verifier_threshold for r in test])},
        "cosine_guards": {"threshold": guards_threshold, **_rates(test, [_score(r, "guards") >= guards_threshold for r in test])},
        "equal_false_hit": equal,
        "verifier_wins": sum(v["verifier"] > v["guards"] for v in equal.values()),
    }


def _served(row: dict[str, Any], policy: str, header: dict[str, Any]) -> bool:
    if "score" not in row:
        return False
    if policy.startswith("steered"):
        return bool(row.get(f"{policy}_served"))
    return row["score"] >= (LOOSE if policy == "fixed_loose" else header["topic_verifier_threshold"])


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure, from the raw file's header and rows alone."""
    figures: dict[str, Any] = {"judge": judge_figures(rows), "shift": {}}
    dev = [r for r in rows if r["part"] == "pairs" and r["set"] == "dev"]
    figures["verifier_vs_guards"] = _comparison([r for r in dev if r["split"] != "test"], [r for r in dev if r["split"] == "test"],
                                                header["verifier_threshold"])
    topics = [r for r in rows if r["part"] == "pairs" and r["set"] == "topics"]
    figures["verifier_vs_guards_topics"] = _comparison([r for r in topics if r["split"] == "train"],
                                                       [r for r in topics if r["split"] == "held_out"], header["topic_verifier_threshold"])
    # The verifier stays only if, at equal false-hit rates on both kinds of held-back data, it
    # hits more duplicates than cosine + guards at most ceilings.
    keep = all(figures[k]["verifier_wins"] * 2 > len(LEVELS) for k in ("verifier_vs_guards", "verifier_vs_guards_topics"))
    figures["ship"] = "verifier" if keep else "cosine_guards"
    replay = [r for r in rows if r["part"] == "replay"]
    available = max(1, sum(r["available"] for r in replay))
    for policy in POLICIES:
        hits = [r for r in replay if _served(r, policy, header)]
        windows = []
        for start in range(WARMUP, len(replay) - WINDOW + 1, WINDOW // 2):
            w = [r for r in replay[start:start + WINDOW] if _served(r, policy, header)]
            windows.append(sum(not r["duplicate"] for r in w) / len(w) if w else 0.0)
        figures["shift"][policy] = {
            "served_false_hit_rate": round(sum(not r["duplicate"] for r in hits) / max(1, len(hits)), 4),
            "max_window_false_hit_rate": round(max(windows), 4) if windows else 0.0,
            "duplicate_hit_rate": round(sum(r["duplicate"] for r in hits) / available, 4),
            "served_hits": len(hits),
            "false_hits": sum(not r["duplicate"] for r in hits),
        }
    for policy in ("steered", "steered_perfect_judge"):
        figures["shift"][policy] |= {
            "over_time": [
                {"queries": f"{start}-{start + len(block)}", "served": len(served), "false": sum(not r["duplicate"] for r in served),
                 "threshold_at_end": block[-1][f"{policy}_threshold"]}
                for start in range(0, len(replay), WINDOW) for block in [replay[start:start + WINDOW]]
                for served in [[r for r in block if _served(r, policy, header)]]],
            "shadow_call_share": round(sum(bool(r.get(f"{policy}_paid")) for r in replay) / max(1, len(replay)), 4),
            "final_threshold": replay[-1][f"{policy}_threshold"] if replay else None,
        }
    steered = figures["shift"]["steered"]
    scored = [r for r in replay if "score" in r]
    figures["shift"]["by_rung"] = {
        f"{rung:g}": {"would_be_hits": len(at), "false": round(sum(not r["duplicate"] for r in at) / len(at), 4) if at else None}
        for rung in header["ladder"] for at in [[r for r in scored if r["score"] >= rung]]
    }
    figures["shift"].update({k: steered[k] for k in ("served_false_hit_rate", "max_window_false_hit_rate", "duplicate_hit_rate",
                                                     "shadow_call_share")})
    figures["shift"]["queries"] = len(replay)
    figures["shift"]["lookups_with_a_labelled_candidate"] = len(scored)
    figures["goal_met"] = steered["served_false_hit_rate"] <= 0.01 and steered["max_window_false_hit_rate"] <= 0.01
    return figures


def report(figures: dict[str, Any]) -> str:
    judge = figures["judge"]
    parts = [table([f"judge set (cut-off {judge['agree_cosine']:.3f})", "interchangeable", "other", "false agree", "false disagree"],
                   [[k, v["interchangeable_pairs"], v["other_pairs"], v["false_agree_rate"], v["false_disagree_rate"]]
                    for k, v in judge.items() if isinstance(v, dict) and "other_pairs" in v])]
    for key, name in (("verifier_vs_guards", "QQP test split"), ("verifier_vs_guards_topics", "held-out topics")):
        vg = figures[key]
        parts.append(table([name, "threshold", "duplicate hit rate", "false hit rate"],
                           [[m, vg[m]["threshold"], vg[m]["duplicate_hit_rate"], vg[m]["false_hit_rate"]] for m in ("verifier", "cosine_guards")]))
        parts.append(table([f"false-hit ceiling ({name})", "verifier dup. hits", "cosine+guards dup. hits"],
                           [[k, v["verifier"], v["guards"]] for k, v in vg["equal_false_hit"].items()]))
    shift = figures["shift"]
    parts.append(table(["replay policy", "served false-hit rate", "worst window", "duplicate hit rate", "served hits", "false hits"],
                       [[p, shift[p]["served_false_hit_rate"], shift[p]["max_window_false_hit_rate"], shift[p]["duplicate_hit_rate"],
                         shift[p]["served_hits"], shift[p]["false_hits"]] for p in POLICIES]))
    for policy in ("steered", "steered_perfect_judge"):
        parts.append(table([f"{policy}, queries", "served", "false", "threshold at end"],
                           [[b["queries"], b["served"], b["false"], b["threshold_at_end"]] for b in shift[policy]["over_time"]]))
    parts.append(f"Replay of {shift['queries']} queries from held-out topics; steered: paid shadow calls {shift['shadow_call_share']:.2%} of "
                 f"queries, final threshold {shift['steered']['final_threshold']}. Ship: {figures['ship']}. Goal (served false hits <= 1% "
                 f"overall and in every window after warm-up) met: {figures['goal_met']}")
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
    print("judging labelled answer pairs ...", flush=True)
    rows = judge_outcomes(judge_pairs())
    judge = judge_figures(rows)["steering"]
    print(f"judge: {judge}", flush=True)
    pairs = load_pairs(QQP)
    graph = DuplicateGraph(pairs)
    vectors = embed_all(pairs)
    shipped = HitVerifier.load()
    held_out_verifier, topics = topic_verifier(pairs, vectors)
    print("scoring QQP pairs ...", flush=True)
    for split, part in split_pairs(pairs).items():
        rows += pair_outcomes(part, "dev", split, graph, vectors, shipped)
        train = [p for p in part if not topics.is_held_out(p)] if split != "test" else []
        rows += pair_outcomes(train, "topics", "train", graph, vectors, held_out_verifier)
        rows += pair_outcomes([p for p in part if topics.is_held_out(p)], "topics", "held_out", graph, vectors, held_out_verifier)
    print("replaying ...", flush=True)
    stream, digest = replay_stream(pairs, topics)
    rows += replay_outcomes(stream, pairs, graph, vectors, held_out_verifier, judge)
    header = {"verifier_threshold": shipped.threshold, "topic_verifier_threshold": held_out_verifier.threshold,
              "topic_verifier": {k: held_out_verifier.meta[k] for k in ("topics", "held_out_topics", "held_out_digest", "data_sha256")},
              "judge": judge, "stream_digest": digest, "loose": LOOSE, "seed": SEED, "ladder": SteeringConfig().ladder,
              "target": SteeringConfig().target}
    publish(args, NAME, TITLE, header, rows, derive, report)


if __name__ == "__main__":
    main()
