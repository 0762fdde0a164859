"""Batches on idle local capacity: what a running batch does to interactive traffic, how much of it
runs locally, what it costs against a hosted sync API, and how long it takes.

One ``spillover serve`` on the embedded default (SmolLM2 on CPU, its engine pinned to core 0,
everything else on core 1, as ``bench/spillover.py`` does; ledger on, local work priced every
5 s). A window of the Azure LLM code trace (tokens scaled 1/16, at least 16; arrivals spread to
``--rps``) is replayed as interactive streamed requests, in rounds that alternate which setup
goes first: ``without`` the batch, and ``with`` a batch created just before the replay (Arena-Hard
questions and GSM8K problems from ``../shared/data``, ``max_tokens`` ``--batch-max-tokens``).
Each replay uses texts no other replay used (no prefix-cache help).

Figures, every one from the raw rows: ``interactive_ttft_p99_ratio`` (per round, the with-batch
replay's TTFT p99 over the without one's; median and range over rounds), the same for p50,
``batch_local_token_share`` (the batch lines' tokens served locally, from their ledger rows),
``batch_cost_vs_sync`` (their ledger cost, local work priced from replica time, over the same
tokens at ``--sync-model``'s list price in the shipped price table), ``batch_makespan_s`` (created
to completed, median over rounds).

    python bench/batch.py [--rounds 2] [--requests 30] [--rps 0.15] [--batch-lines 24]
    python bench/batch.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import signal
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.trace import compress_time, read_trace, scale_tokens, window  # noqa: E402
from bench._common import (  # noqa: E402
    REPO,
    add_provenance_arguments,
    add_recompute_arguments,
    percentile,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)
from bench.cores import SHARED_CORE, pin_engine_processes, start  # noqa: E402
from bench.serving import MODEL, PROMPTS, stop, wait_ready  # noqa: E402
from bench.spill_probe import SERVE_PORT, prompt_texts, replay  # noqa: E402
from costbook.prices import DEFAULT_PRICES, PriceTable  # noqa: E402
from stores.sql_schema import ledger_table  # noqa: E402

NAME = "batch"
TITLE = "Batches on idle local capacity: interactive TTFT with and without a batch, local share, cost against sync"
TRACE = REPO.parent / "shared" / "data" / "traces" / "azure_llm_2023_code.csv"
GSM8K = REPO.parent / "shared" / "data" / "routing" / "gsm8k" / "gsm8k_responses.csv"
SETUPS = ("without", "with")


def serve_config(workdir: Path) -> dict[str, Any]:
    return {"models": [{"name": MODEL, "source": f"builtin:{MODEL}"}], "embeddings": [], "cache": {"enabled": False},
            "stores": {"sqlite_path": str(workdir / "spillover.db"), "spool_dir": str(workdir / "spool")},
            "costs": {"local_interval_s": 5}, "batch": {"files_dir": str(workdir / "files")}}


def batch_questions(count: int, offset: int) -> list[str]:
    """Half Arena-Hard questions, half GSM8K problems, from ``offset`` on (a round's own)."""
    arena = [r.get("prompt") or r["turns"][0]["content"] for r in map(json.loads, PROMPTS.read_text().splitlines())]
    with GSM8K.open(newline="", encoding="utf-8") as f:
        gsm8k = [r["prompt"] for r in csv.DictReader(f)]
    half = count // 2
    return arena[offset * half:(offset + 1) * half] + gsm8k[offset * (count - half):(offset + 1) * (count - half)]


def create_batch(client: openai.OpenAI, questions: list[str], max_tokens: int, tag: str) -> str:
    lines = b"".join(json.dumps({"custom_id": f"{tag}-{i}", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": MODEL, "messages": [{"role": "user", "content": q}], "max_tokens": max_tokens, "temperature": 0}}).encode() + b"\n"
        for i, q in enumerate(questions))
    uploaded = client.files.create(file=(f"{tag}.jsonl", io.BytesIO(lines)), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id


def ledger_lines(database: Path, batch_ids: list[str], timeout_s: float = 120) -> list[dict[str, Any]]:
    """Each batch line's ledger row once local work is priced (no ``gpu:pending`` left)."""
    engine = sa.create_engine(f"sqlite:///{database}")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with engine.connect() as c:
                rows = [dict(r) for r in c.execute(sa.select(ledger_table).where(ledger_table.c.batch_id.in_(batch_ids))).mappings()]
            if rows and all(r["price_version"] != "gpu:pending" for r in rows) or time.monotonic() > deadline:
                return rows
            time.sleep(2)
    finally:
        engine.dispose()


def run(args: argparse.Namespace, header: dict[str, Any]) -> list[dict[str, Any]]:
    _, everything = read_trace(TRACE)
    raw = scale_tokens(window(everything, 0.0, 3600.0), 1 / 16, 16)[: args.requests]
    # The window's own rate, len / span, becomes --rps.
    arrivals = compress_time(raw, args.rps * raw[-1].at_s / len(raw))
    header["interactive"] = {"requests": len(arrivals), "span_s": round(arrivals[-1].at_s, 1)}
    rows: list[dict[str, Any]] = []
    batch_ids: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = workdir / "serve.json"
        path.write_text(json.dumps(serve_config(workdir)))
        process = start(SHARED_CORE, [sys.executable, "-m", "spillover.cli", "serve", "--config", str(path)], workdir / "serve.log")
        try:
            wait_ready(process, SERVE_PORT, MODEL)
            header["engine_core_processes_pinned"] = len(pin_engine_processes(process.pid))
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{SERVE_PORT}/v1", api_key="unused", max_retries=2)
            for round_ in range(args.rounds):
                for offset in range(len(SETUPS)):
                    setup = SETUPS[(round_ + offset) % len(SETUPS)]
                    prompts = prompt_texts(arrivals, first_index=len(arrivals) * (1 + 2 * round_ + SETUPS.index(setup)))
                    batch_id = create_batch(client, batch_questions(args.batch_lines, round_), args.batch_max_tokens,
                                            f"r{round_}") if setup == "with" else None
                    outcomes = asyncio.run(replay(MODEL, arrivals, prompts))
                    rows += [{"phase": "interactive", "setup": setup, "round": round_, "index": i, "ttft_s": o.ttft_s, "ok": o.ok}
                             for i, o in enumerate(outcomes)]
                    if batch_id is not None:
                        while (batch := client.batches.retrieve(batch_id)).status not in ("completed", "failed", "expired", "cancelled"):
                            time.sleep(1)
                        batch_ids.append(batch_id)
                        rows.append({"phase": "batch", "round": round_, "batch_id": batch_id, "status": batch.status,
                                     "makespan_s": batch.completed_at - batch.created_at if batch.completed_at else None,
                                     "completed": batch.request_counts.completed, "failed": batch.request_counts.failed})
                    print(f"round {round_} {setup}: done", flush=True)
            for line in ledger_lines(workdir / "spillover.db", batch_ids):
                rows.append({"phase": "batch_line", "batch_id": line["batch_id"], "destination": line["destination"],
                             "prompt_tokens": line["prompt_tokens"], "completion_tokens": line["completion_tokens"],
                             "cost_micro_usd": line["cost_micro_usd"], "price_version": line["price_version"], "status": line["status"]})
        finally:
            stop(process)
    return rows


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    def ttfts(setup: str, round_: int) -> list[float]:
        return [r["ttft_s"] for r in rows if r["phase"] == "interactive" and r["setup"] == setup and r["round"] == round_ and r["ok"]]

    ratios: dict[str, list[float]] = {"p99": [], "p50": []}
    for round_ in range(header["rounds"]):
        with_, without = ttfts("with", round_), ttfts("without", round_)
        ratios["p99"].append(percentile(with_, 0.99) / percentile(without, 0.99))
        ratios["p50"].append(percentile(with_, 0.5) / percentile(without, 0.5))
    lines = [r for r in rows if r["phase"] == "batch_line"]
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in lines)
    local_tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in lines if r["destination"] == "local")
    sync = header["sync_price"]
    sync_micro = sum(r["prompt_tokens"] * sync["input"] + r["completion_tokens"] * sync["output"] for r in lines)
    batches = [r for r in rows if r["phase"] == "batch"]
    makespans = [r["makespan_s"] for r in batches if r["makespan_s"] is not None]
    interactive = [r for r in rows if r["phase"] == "interactive"]
    return {
        "interactive_ttft_p99_ratio": round(statistics.median(ratios["p99"]), 3),
        "interactive_ttft_p99_ratio_range": [round(min(ratios["p99"]), 3), round(max(ratios["p99"]), 3)],
        "interactive_ttft_p50_ratio": round(statistics.median(ratios["p50"]), 3),
        "interactive_failed": sum(not r["ok"] for r in interactive),
        "interactive_ttft_p99_s": {s: round(statistics.median(percentile(ttfts(s, k), 0.99) for k in range(header["rounds"])), 3) for s in SETUPS},
        "batch_lines": len(lines), "batch_lines_failed": sum(r["failed"] for r in batches),
        "batch_local_token_share": round(local_tokens / tokens, 4) if tokens else 0.0,
        "batch_cost_micro_usd": sum(r["cost_micro_usd"] for r in lines),
        "batch_cost_vs_sync": round(sum(r["cost_micro_usd"] for r in lines) / sync_micro, 4) if sync_micro else 0.0,
        "batch_unpriced_lines": sum(r["price_version"] == "gpu:pending" for r in lines),
        "batch_makespan_s": statistics.median(makespans) if makespans else None,
        "rounds": header["rounds"], "sync_model": header["sync_model"],
    }


def report(figures: dict[str, Any]) -> str:
    f = figures
    text = table(["TTFT p99 ratio (with/without)", "range", "TTFT p50 ratio", "p99 without s", "p99 with s", "batch lines", "local token share",
                  "cost vs sync", "makespan s"],
                 [(f["interactive_ttft_p99_ratio"], f"{f['interactive_ttft_p99_ratio_range'][0]}-{f['interactive_ttft_p99_ratio_range'][1]}",
                   f["interactive_ttft_p50_ratio"], f["interactive_ttft_p99_s"]["without"], f["interactive_ttft_p99_s"]["with"],
                   f["batch_lines"], f["batch_local_token_share"], f["batch_cost_vs_sync"], f["batch_makespan_s"])])
    return text + (f"\n\nMedians over {f['rounds']} rounds of interleaved replays; cost against {f['sync_model']}'s list price (sync); "
                   f"{f['interactive_failed']} interactive requests failed, {f['batch_lines_failed']} batch lines failed, "
                   f"{f['batch_unpriced_lines']} batch lines still unpriced when read.")


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=30, help="interactive requests per replay (the trace window's first N)")
    parser.add_argument("--rps", type=float, default=0.15, help="interactive arrivals per second (mean): low enough to leave idle capacity")
    parser.add_argument("--batch-lines", type=int, default=24)
    parser.add_argument("--batch-max-tokens", type=int, default=64)
    parser.add_argument("--sync-model", default="gpt-4o-mini", help="the hosted model whose sync list price the batch is compared with")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, report)
    refuse_dirty_tree(args.allow_dirty)
    price = PriceTable.load(DEFAULT_PRICES).price(args.sync_model)
    assert price is not None, f"{args.sync_model} is not in the price table"
    header: dict[str, Any] = {"rounds": args.rounds, "rps": args.rps, "batch_lines": args.batch_lines, "batch_max_tokens": args.batch_max_tokens,
                              "trace": TRACE.name, "token_scale": "1/16, at least 16", "sync_model": args.sync_model,
                              "sync_price": {"input": float(price.input / Decimal(1)), "output": float(price.output / Decimal(1))}}
    rows = run(args, header)
    publish(args, NAME, TITLE, header, rows, derive, report)


if __name__ == "__main__":
    main()
