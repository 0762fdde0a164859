"""Reliability drills under load, on loopback: what a platform team asks before trusting a gateway.

One ``spillover serve`` (the embedded default's SmolLM2 engine, keys on) with its own Redis
(cache and counters), its own PostgreSQL cluster (keys, the ledger) and a hosted stand-in
(:mod:`bench.hosted_standin`) behind a TCP relay that can black-hole it. A load generator streams
chat completions with fresh prompts at ~80% of the local replica's measured capacity (spill-over
on: what does not fit goes hosted), and each drill breaks one part while the load runs:

* ``engine_kill``: SIGKILL the engine replica mid-stream (Serve starts a new one);
* ``ingress_kill``: SIGKILL the ingress replica;
* ``redis_down``: Redis stopped for 30 s, then started again;
* ``postgres_down``: PostgreSQL stopped for 60 s, then started again;
* ``hosted_blackhole``: the hosted provider accepts connections and never answers, for 60 s (30%
  of that drill's requests pinned hosted, so that work meets it);
* ``scale_to_zero``: ``spillover scale`` the model to 0 replicas, 30 s later back to 1.

Each request ends as ``completed``, ``failed_clear`` (an OpenAI-style error body, or an error
event after the first token) or ``lost`` (the client got neither: a hang past its timeout, a
reset, a stream that stopped without an error event, a 5xx without an OpenAI body). Ledger rows
are read back from PostgreSQL by request id: every request that reached the ingress and ended
cleanly should have exactly one. Recovery: from the fault's end to the start of the first request
after which every request completed. The soak runs the same load for ``--soak-s`` and samples the
RSS of every process (ingress, engine, Ray's proxy and controller); growth is the last minute's
median over the first minute's after ``--warmup-s``. After every drill, the serve log and Ray's
session logs are searched for the API key and the hosted key.

Every request is a raw row in ``bench/results/drills.raw.jsonl.gz``; every figure is derived from
that file by :func:`derive`, live or with ``--recompute``.

    python bench/drills.py [--soak-s 600] [--allow-dirty]
    python bench/drills.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402
    REPO,
    add_provenance_arguments,
    add_recompute_arguments,
    machine,
    median,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)
from bench.drill_parts import Postgres, Redis, Relay, kill_role, rss_sample, wait_until  # noqa: E402
from bench.serving import MODEL, stop, wait_ready  # noqa: E402
from tests.helpers import free_port  # noqa: E402

DRILLS = ("engine_kill", "ingress_kill", "redis_down", "postgres_down", "hosted_blackhole", "scale_to_zero")
#: How long each drill's fault lasts (kills are instant: Serve's own restart is the recovery).
FAULT_S = {"engine_kill": 0.0, "ingress_kill": 0.0, "redis_down": 30.0, "postgres_down": 60.0, "hosted_blackhole": 60.0,
           "scale_to_zero": 30.0}
#: A drill's share of requests pinned to the hosted side (``X-Spillover-Route: hosted-only``): at
#: 0.8x (even at 1.6x) the local capacity nothing spilled, so the black hole met no request; pinned
#: ones must fail clearly (first byte past ``first_byte_timeout_s``) or be served, never hang.
DRILL_HOSTED_SHARE = {"hosted_blackhole": 0.3}
HOSTED_MODEL = "hosted-smollm2"
HOSTED_KEY = "sk-drills-hosted-" + uuid.uuid4().hex
GOALS = {"lost": 0, "rows_missing": 0, "rows_duplicated": 0, "recovery_s": 30.0, "rss_growth_pct": 5.0, "soak_errors": 0}
CLIENT_TIMEOUT_S = 120.0


# ---- load ----

class Load:
    """Open-loop arrivals at ``rate_rps`` (Poisson), each a streamed chat completion with a fresh
    prompt, every outcome a raw row."""

    def __init__(self, base_url: str, key: str, rate_rps: float, max_tokens: int, seed: int, hosted_share: float = 0.0) -> None:
        self.base_url, self.key, self.rate_rps, self.max_tokens, self.hosted_share = base_url, key, rate_rps, max_tokens, hosted_share
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._seed = seed
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.t0 = time.monotonic()

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(CLIENT_TIMEOUT_S + 30)

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def _run(self) -> None:
        import random

        rng = random.Random(self._seed)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=httpx.Timeout(CLIENT_TIMEOUT_S, connect=10), limits=limits) as client:
            tasks = set()
            while not self._stop.is_set():
                task = asyncio.create_task(self._one(client, rng.random()))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(rng.expovariate(self.rate_rps))
            await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient, salt: float) -> None:
        request_id = "drill-" + uuid.uuid4().hex[:20]
        pinned = salt < self.hosted_share
        headers = {"authorization": f"Bearer {self.key}", "x-request-id": request_id, **({"x-spillover-route": "hosted-only"} if pinned else {})}
        body = {"model": MODEL, "stream": True, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": f"({request_id} {salt:.6f}) Describe a harbour at dawn in two sentences."}]}
        row: dict[str, Any] = {"id": request_id, "start_s": round(self.now(), 3), "status": None, "outcome": None, "destination": None,
                               "ttft_s": None, "chunks": 0, "error": None, "pinned_hosted": pinned}
        try:
            async with client.stream("POST", self.base_url + "/v1/chat/completions", json=body,
                                     headers=headers) as response:
                row["status"], row["destination"] = response.status_code, response.headers.get("x-spillover-destination")
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")
                    row["outcome"] = "failed_clear" if _openai_error(text) else "lost"
                    row["error"] = text[:200]
                else:
                    done = errored = False
                    async for line in response.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        if line == "data: [DONE]":
                            done = True
                        elif line.startswith('data: {"error"'):
                            errored, row["error"] = True, line[6:206]
                        else:
                            row["chunks"] += 1
                            if row["ttft_s"] is None:
                                row["ttft_s"] = round(self.now() - row["start_s"], 3)
                    row["outcome"] = "completed" if done and not errored else "failed_clear" if errored else "lost"
        except (httpx.HTTPError, OSError) as exc:
            row["outcome"], row["error"] = "lost", type(exc).__name__
        row["end_s"] = round(self.now(), 3)
        self.rows.append(row)


def _openai_error(text: str) -> bool:
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and {"message", "type"} <= set(error)


# ---- the run ----

def serve_config(redis: Redis, postgres: Postgres, relay: Relay, workdir: Path, port: int) -> dict[str, Any]:
    key_file = workdir / "hosted.key"
    key_file.write_text(HOSTED_KEY)
    return {
        "server": {"port": port},
        "models": [{"name": MODEL, "source": f"builtin:{MODEL}"}],
        "embeddings": [],
        "auth": {"enabled": True, "secret_file": str(workdir / "key-secret")},
        "stores": {"redis_url": f"redis://127.0.0.1:{redis.port}/0", "postgres_dsn": postgres.dsn, "spool_dir": str(workdir / "spool"),
                   "sqlite_path": str(workdir / "unused.db")},
        "costs": {"budgets": [{"scope": "team", "name": "drills", "daily_usd": 1000}]},
        "providers": [{"name": "hosted", "kind": "openai", "base_url": f"http://127.0.0.1:{relay.port}/v1", "api_key_file": str(key_file),
                       "models": {MODEL: HOSTED_MODEL}, "first_byte_timeout_s": 10}],
        "routes": {MODEL: {"ttft_target_s": 3.0, "hosted": [{"provider": "hosted"}], "max_tokens": {"default": 32, "max": 256}}},
        "failover": {"deadline_s": 60},
    }


def create_key(config_path: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "spillover.cli", "keys", "--config", str(config_path), "create", "--user", "drill",
                          "--team", "drills"], capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout)["key"]


def capacity_rps(base_url: str, key: str, max_tokens: int, seconds: float) -> float:
    """Local requests finished per second by a closed loop of 4 (the local route only), once the
    ingress sees the replica ready (its engine-state board lags the deployment by a few seconds)."""
    def local(client: httpx.Client) -> httpx.Response:
        return client.post(base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}", "x-spillover-route": "local-only"},
                           json={"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": uuid.uuid4().hex}]})

    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
        wait_until(lambda: local(client).status_code == 200, "a local answer", 300)
    finished = 0
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal finished
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
            while time.monotonic() < deadline:
                if local(client).status_code == 200:
                    finished += 1
                else:
                    time.sleep(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return finished / seconds


def ledger_counts(postgres: Postgres, ids: list[str]) -> dict[str, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres.dsn)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT request_id, count(*) FROM spillover_ledger WHERE request_id = ANY(:ids) GROUP BY request_id"),
                                      {"ids": ids})
            return {r[0]: r[1] for r in rows}
    finally:
        engine.dispose()


def secrets_in_logs(paths: list[Path], secrets: list[str]) -> int:
    found = 0
    for path in paths:
        for file in ([path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]):
            with contextlib.suppress(OSError):
                data = file.read_bytes()
                found += sum(data.count(secret.encode()) for secret in secrets)
    return found


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    header: dict[str, Any] = {"machine": machine(), "drills": list(args.drills), "fault_s": FAULT_S, "soak_s": args.soak_s, "warmup_s": args.warmup_s,
                              "pre_s": args.pre_s, "post_s": args.post_s, "load_share": args.load_share, "max_tokens": args.max_tokens,
                              "client_timeout_s": CLIENT_TIMEOUT_S, "rss": [], "faults": {}, "secrets_in_logs": {}}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis, postgres = Redis(workdir), Postgres(workdir)
        redis.start()
        postgres.start()
        standin_port = free_port()
        standin = subprocess.Popen([sys.executable, str(REPO / "bench" / "hosted_standin.py"), "--port", str(standin_port), "--model", HOSTED_MODEL],
                                   stdout=(workdir / "standin.log").open("w"), stderr=subprocess.STDOUT)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        try:
            with Relay(standin_port) as relay:
                wait_ready(standin, standin_port, HOSTED_MODEL)
                config_path = workdir / "spillover.yaml"
                config_path.write_text(json.dumps(serve_config(redis, postgres, relay, workdir, port)))
                key = create_key(config_path)
                serve_log = workdir / "serve.log"
                env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
                env.pop("RAY_ADDRESS", None)
                serve = subprocess.Popen([sys.executable, "-m", "spillover.cli", "serve", "--config", str(config_path)], env=env,
                                         stdout=serve_log.open("w"), stderr=subprocess.STDOUT)
                try:
                    wait_until(lambda: httpx.get(base_url + "/ready", timeout=5).status_code == 200, "spillover serve", 600)
                    httpx.post(base_url + "/v1/chat/completions", timeout=120, headers={"authorization": f"Bearer {key}"},
                               json={"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "warm up"}]})
                    header["capacity_rps"] = round(capacity_rps(base_url, key, args.max_tokens, args.capacity_s), 4)
                    rate = max(0.05, args.load_share * header["capacity_rps"])
                    header["rate_rps"] = round(rate, 4)
                    print(f"capacity {header['capacity_rps']} req/s; load {rate:.3f} req/s", flush=True)
                    rows += soak(header, serve.pid, base_url, key, rate, args)
                    for index, drill in enumerate(args.drills):
                        rows += run_drill(drill, index, header, serve.pid, base_url, key, rate, args, redis, postgres, relay, config_path)
                        header["secrets_in_logs"][drill] = secrets_in_logs([serve_log, Path("/tmp/ray/session_latest/logs")], [key, HOSTED_KEY])
                        print(f"{drill}: {summarise([r for r in rows if r['phase'] == drill])}", flush=True)
                    counts = ledger_counts(postgres, [r["id"] for r in rows])
                    for row in rows:
                        row["ledger_rows"] = counts.get(row["id"], 0)
                finally:
                    stop(serve)
        finally:
            standin.terminate()
            standin.wait(30)
            with contextlib.suppress(Exception):
                postgres.stop()
            with contextlib.suppress(Exception):
                redis.stop()
    return header, rows


def soak(header: dict[str, Any], root: int, base_url: str, key: str, rate: float, args: argparse.Namespace) -> list[dict[str, Any]]:
    with Load(base_url, key, rate, args.max_tokens, seed=1) as load:
        while load.now() < args.soak_s:
            header["rss"].append({"at_s": round(load.now(), 1), **rss_sample(root)})
            time.sleep(args.rss_every_s)
    return [{"phase": "soak", **row} for row in load.rows]


def run_drill(drill: str, index: int, header: dict[str, Any], root: int, base_url: str, key: str, rate: float, args: argparse.Namespace,
              redis: Redis, postgres: Postgres, relay: Relay, config_path: Path) -> list[dict[str, Any]]:
    fault: dict[str, Any] = {"hosted_share": DRILL_HOSTED_SHARE.get(drill, 0.0)}
    with Load(base_url, key, rate, args.max_tokens, seed=10 + index, hosted_share=fault["hosted_share"]) as load:
        time.sleep(args.pre_s)
        fault["start_s"] = round(load.now(), 3)
        if drill == "engine_kill":
            fault["killed"] = kill_role(root, "engine")
        elif drill == "ingress_kill":
            fault["killed"] = kill_role(root, "ingress")
        elif drill == "redis_down":
            redis.stop()
            time.sleep(FAULT_S[drill])
            redis.start()
        elif drill == "postgres_down":
            postgres.stop()
            time.sleep(FAULT_S[drill])
            postgres.start()
        elif drill == "hosted_blackhole":
            relay.blackhole = True
            time.sleep(FAULT_S[drill])
            relay.blackhole = False
        elif drill == "scale_to_zero":
            scale(config_path, 0)
            time.sleep(FAULT_S[drill])
            scale(config_path, 1)
        fault["end_s"] = round(load.now(), 3)
        time.sleep(args.post_s)
    header["faults"][drill] = fault
    return [{"phase": drill, **row} for row in load.rows]


def scale(config_path: Path, replicas: int) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    subprocess.run([sys.executable, "-m", "spillover.cli", "scale", MODEL, str(replicas)], check=True, capture_output=True, env=env, timeout=120)


# ---- figures ----

def summarise(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {o: sum(r["outcome"] == o for r in rows) for o in ("completed", "failed_clear", "lost")}


def recovery_s(rows: list[dict[str, Any]], fault_end_s: float) -> float | None:
    """From the fault's end to the start of the first request after which every request completed."""
    ordered = sorted(rows, key=lambda r: r["start_s"])
    last_bad = max((r["start_s"] for r in ordered if r["outcome"] != "completed"), default=None)
    if last_bad is None or last_bad < fault_end_s:
        return 0.0
    later = [r["start_s"] for r in ordered if r["start_s"] > last_bad]
    return round(later[0] - fault_end_s, 2) if later else None


def drill_figures(rows: list[dict[str, Any]], fault: dict[str, Any]) -> dict[str, Any]:
    ended = [r for r in rows if r["outcome"] in ("completed", "failed_clear")]
    local_after = [r["start_s"] for r in rows if r["start_s"] >= fault["end_s"] and r["destination"] == "local" and r["outcome"] == "completed"]
    return {
        "hosted_share": fault["hosted_share"], "sent": len(rows), **summarise(rows),
        "rows_missing": sum(r.get("ledger_rows", 0) == 0 for r in ended),
        "rows_duplicated": sum(r.get("ledger_rows", 0) > 1 for r in rows),
        "recovery_s": recovery_s(rows, fault["end_s"]),
        "local_again_s": round(min(local_after) - fault["end_s"], 2) if local_after else None,
        "spilled_share": round(sum(r["destination"] not in (None, "local") for r in rows) / len(rows), 3) if rows else None,
    }


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    drills = {name: drill_figures([r for r in rows if r["phase"] == name], header["faults"][name]) for name in header["faults"]}
    soak_rows = [r for r in rows if r["phase"] == "soak"]
    after_warmup = [s for s in header["rss"] if s["at_s"] >= header["warmup_s"]]
    first = [s for s in after_warmup if s["at_s"] < header["warmup_s"] + 60]
    last = [s for s in after_warmup if s["at_s"] >= after_warmup[-1]["at_s"] - 60] if after_warmup else []
    growth = {}
    for role in (k for k in (header["rss"][0] if header["rss"] else {}) if k != "at_s"):
        start, end = median([s[role] for s in first]) if first else 0, median([s[role] for s in last]) if last else 0
        if start > 0:
            growth[role] = round(100 * (end - start) / start, 2)
    soak_figures = {"requests": len(soak_rows), "errors": sum(r["outcome"] != "completed" for r in soak_rows), **summarise(soak_rows),
                    "rss_growth_pct": max(growth.values()) if growth else None, "rss_growth_pct_by_process": growth,
                    "rss_mib_end": {role: round(median([s[role] for s in last]) / 2**20, 1) for role in growth},
                    "ledger_rows_equal_finished": sum(r.get("ledger_rows", 0) == 1 for r in soak_rows if r["outcome"] != "lost")
                    == sum(r["outcome"] != "lost" for r in soak_rows),
                    "spilled_share": round(sum(r["destination"] not in (None, "local") for r in soak_rows) / len(soak_rows), 3) if soak_rows else None}
    met = {
        "lost": all(d["lost"] <= GOALS["lost"] for d in drills.values()),
        "rows": all(d["rows_missing"] == 0 and d["rows_duplicated"] == 0 for d in drills.values()),
        "recovery": all(d["recovery_s"] is not None and d["recovery_s"] <= GOALS["recovery_s"] for d in drills.values()),
        "rss_growth": soak_figures["rss_growth_pct"] is not None and soak_figures["rss_growth_pct"] <= GOALS["rss_growth_pct"],
        "soak_errors": soak_figures["errors"] == 0,
        "no_secret_in_logs": not any(header["secrets_in_logs"].values()),
    }
    return {"capacity_rps": header["capacity_rps"], "rate_rps": header["rate_rps"], "drills": drills, "soak": soak_figures,
            "secrets_in_logs": header["secrets_in_logs"], "goals": GOALS, "goals_met": met}


def summary_table(figures: dict[str, Any]) -> str:
    keys = ("hosted_share", "sent", "completed", "failed_clear", "lost", "rows_missing", "rows_duplicated", "recovery_s", "local_again_s",
            "spilled_share")
    lines = [table(["drill", *keys], [[name, *(d[k] for k in keys)] for name, d in figures["drills"].items()])]
    soak_figures = figures["soak"]
    lines.append(table(["soak", "requests", "errors", "lost", "rss_growth_pct (max)", "ledger rows = finished", "spilled_share"],
                       [["", soak_figures["requests"], soak_figures["errors"], soak_figures["lost"], soak_figures["rss_growth_pct"],
                         soak_figures["ledger_rows_equal_finished"], soak_figures["spilled_share"]]]))
    lines.append(f"RSS growth by process (%): {soak_figures['rss_growth_pct_by_process']}; RSS at end (MiB): {soak_figures['rss_mib_end']}")
    lines.append(f"Load: {figures['rate_rps']} req/s against a measured local capacity of {figures['capacity_rps']} req/s. "
                 f"Secrets found in logs after each drill: {figures['secrets_in_logs']}. Goals met: {figures['goals_met']}")
    return "\n\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-s", type=float, default=600.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--rss-every-s", type=float, default=10.0)
    parser.add_argument("--pre-s", type=float, default=20.0, help="load before each fault")
    parser.add_argument("--post-s", type=float, default=60.0, help="load after each fault ends")
    parser.add_argument("--capacity-s", type=float, default=40.0)
    parser.add_argument("--load-share", type=float, default=0.8, help="offered load over the measured local capacity")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--drills", nargs="+", choices=DRILLS, default=list(DRILLS), help="a subset, to try the bench out")
    parser.add_argument("--no-record", action="store_true", help="print the figures; write no record (a trial run)")
    add_provenance_arguments(parser)
    add_recompute_arguments(parser)
    args = parser.parse_args()
    if recompute_if_asked(args, "drills", derive, summary_table):
        return
    refuse_dirty_tree(args.allow_dirty)
    header, rows = run(args)
    publish(args, "drills", "Reliability drills under load", header, rows, derive, summary_table)


if __name__ == "__main__":
    main()
