"""Open-loop load for the costs benchmark (bench/costs.py), in a process of its own.

Requests leave at a fixed spacing (``1 / rate``) whether or not earlier ones have answered, so a
slow server meets the same arrivals as a fast one, and each latency counts from the moment its
request was due, not from when it actually left (a late send is the load's delay, and an
open-loop figure must not hide it: no coordinated omission). A warm-up at the same rate comes
first and is not measured. Non-streamed chat completions over aiohttp's keep-alive pool, on
uvloop: aiohttp's client costs about a third of httpx's CPU per request, and on two cores the
load's own CPU is taken from the server it measures.

With ``--ledger-dsn``, it then polls PostgreSQL until the measured requests' ledger rows (tagged
by ``x-feature``) are all there: the ledger's lag behind the last response.

Prints one JSON object: p50/p99 latency (ms), achieved requests/s, errors, late sends, and the
ledger check; with ``--outcomes``, writes every measured request's raw row to that file.

    python bench/costs_load.py URL [--rate 200] [--duration-s 60] [--warmup-s 3] [--key K]
        [--feature F] [--ledger-dsn DSN] [--outcomes FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass

import aiohttp

BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 16}).encode()
#: A send this far behind its due time means the generator, not the server, fell behind.
LATE_S = 0.002


@dataclass(frozen=True)
class Sample:
    due: float
    sent: float
    done: float
    status: int  # HTTP status; 0: transport error


async def one(client: aiohttp.ClientSession, due: float, headers: dict[str, str]) -> Sample:
    sent = time.perf_counter()
    try:
        async with client.post("/v1/chat/completions", data=BODY, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return Sample(due, sent, time.perf_counter(), status)


async def phase(client: aiohttp.ClientSession, rate: float, duration_s: float, headers: dict[str, str]) -> tuple[float, list[Sample]]:
    """Send ``rate * duration_s`` requests on a fixed schedule; return the start and every sample."""
    interval = 1.0 / rate
    start = time.perf_counter() + 0.01
    tasks = []
    for i in range(round(rate * duration_s)):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(client, due, headers)))
    return start, list(await asyncio.gather(*tasks))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def outcome(start: float, sample: Sample) -> dict[str, float | int]:
    """One request's raw row, in seconds from the phase's start (microseconds kept)."""
    return {"due_s": round(sample.due - start, 6), "sent_late_s": round(sample.sent - sample.due, 6),
            "latency_s": round(sample.done - sample.due, 6), "status": sample.status}


def summary(outcomes: list[dict]) -> dict[str, float | int | list[int]]:
    """A phase's figures from its raw rows (:func:`outcome`): bench/costs.py derives its record
    with this, live and from the raw file."""
    ok = [o for o in outcomes if o["status"] == 200]
    latencies = [1000 * o["latency_s"] for o in ok]
    last = max((o["due_s"] + o["latency_s"] for o in outcomes), default=0.0)
    return {
        "sent": len(outcomes),
        "ok": len(ok),
        "errors": len(outcomes) - len(ok),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "requests_per_s": len(ok) / max(last, 1e-9),
        "late_sends": sum(1 for o in outcomes if o["sent_late_s"] > LATE_S),
        "statuses": sorted({o["status"] for o in outcomes}),
    }


def ledger_lag(dsn: str, feature: str, expected: int, last_done: float, timeout_s: float = 30.0) -> tuple[int, float | None]:
    """Rows for ``feature`` and the seconds from ``last_done`` until all ``expected`` were there
    (``None`` if they never were within ``timeout_s``)."""
    import psycopg

    rows = 0
    with psycopg.connect(dsn, autocommit=True) as connection:
        while time.perf_counter() - last_done < timeout_s:
            rows = connection.execute("SELECT count(*) FROM spillover_ledger WHERE feature = %s", (feature,)).fetchone()[0]
            if rows >= expected:
                return rows, time.perf_counter() - last_done
            time.sleep(0.02)
    return rows, None


async def run(args: argparse.Namespace) -> dict[str, object]:
    headers = {"content-type": "application/json"}
    if args.key:
        headers["authorization"] = f"Bearer {args.key}"
    connector = aiohttp.TCPConnector(limit=1024)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url=args.url, connector=connector, timeout=timeout, trust_env=False) as client:
        await phase(client, args.rate, args.warmup_s, {**headers, "x-feature": "warmup"})
        start, samples = await phase(client, args.rate, args.duration_s, {**headers, "x-feature": args.feature})
    outcomes = [outcome(start, s) for s in samples]
    if args.outcomes:
        with open(args.outcomes, "w") as out:
            out.writelines(json.dumps(o) + "\n" for o in outcomes)
    result: dict[str, object] = dict(summary(outcomes))
    if args.ledger_dsn:
        rows, lag = ledger_lag(args.ledger_dsn, args.feature, len(samples), max(s.done for s in samples))
        result |= {"rows_written": rows, "ledger_lag_s": lag}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--key")
    parser.add_argument("--feature", default="measure")
    parser.add_argument("--ledger-dsn")
    parser.add_argument("--outcomes", help="write each measured request's raw row here, one JSON line each")
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
