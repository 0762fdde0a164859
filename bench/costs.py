"""What spillover's ingress adds to a request, stages off and on, beside LiteLLM's proxy.

An instant OpenAI-compatible upstream (bench/instant_responder.py, for this benchmark only)
answers every request at once, so a proxy's latency over it is the proxy's own. Four setups,
each its own process behind the same responder, in the order ABCD per round, medians over
rounds; open-loop load from another process (bench/costs_load.py: fixed spacing, latency from
each request's due time, a warm-up first):

* ``direct``: straight to the responder; the baseline. A setup's *added* p50/p99 is its
  percentile minus direct's in the same round; the issue's ``added_*`` figures (and goals) are
  what the cost stages add: spillover_on's percentile minus spillover_off's, round by round.
* ``spillover_off``: the ingress app under uvicorn (bench/costs_ingress.py: no Ray), its one
  route hosted-only at the responder; auth off, no budgets, no ledger, no Redis or PostgreSQL.
* ``spillover_on``: the same with every cost stage: auth (a key made by ``spillover keys
  create``), per-key rate limits, a team budget (both far above the load), the ledger, over
  Redis and a PostgreSQL database of the benchmark's own (made and dropped here). After the load:
  ledger rows written == requests sent, and the ledger's lag behind the last response.
* ``litellm``: LiteLLM's proxy (``litellm[proxy]``, no database) in its own venv
  (.bench-venvs/litellm, made on first run), the responder as an OpenAI-compatible model.

Not measured: the ingress behind Ray Serve's proxy (the issue's 6.7 ms p50 was that proxy
alone); it would need a Ray cluster of its own beside this load on two cores.

Every measured request is a raw row in ``bench/results/costs.raw.jsonl.gz`` (with each run's
ledger check in its header); every figure is derived from that file by :func:`derive`, live or
with ``--recompute``.

    python bench/costs.py [--rate 200] [--duration-s 60] [--rounds 3] [--warmup-s 3] [--allow-dirty]
    python bench/costs.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402
    REPO,
    add_busy_arguments,
    add_provenance_arguments,
    median,
    add_recompute_arguments,
    recompute_if_asked,
    record,
    refuse_busy_machine,
    refuse_dirty_tree,
    table,
    terminate,
)
from bench.costs_load import summary  # noqa: E402

BENCH = REPO / "bench"
NAME = "costs"
SETUPS = ("direct", "spillover_off", "spillover_on", "litellm")
SUSTAINED_SETUPS = ("direct", "spillover_on", "litellm")
RESPONDER_PORT, PROXY_PORT = 18401, 18402
REDIS_URL = "redis://127.0.0.1:6379/11"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "spillover_bench"
BENCH_DSN = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
LITELLM_VENV = REPO / ".bench-venvs" / "litellm"
#: Pinned: 1.107.0 was a compromised release, and 1.108 and later pin proxy extras the package index here lacks.
LITELLM_REQUIREMENT = "litellm[proxy]==1.106.12"
#: Goals of the issue: added p50 and p99 (ms) for stages on, and the offered rate achieved.
GOAL_P50_MS, GOAL_P99_MS, GOAL_LAG_S = 2.0, 10.0, 1.0
TEAM = "bench"
LITELLM_KEY = "sk-bench-" + secrets.token_hex(16)


def ensure_litellm() -> Path:
    """LiteLLM's proxy in a venv of its own (its pins must not touch spillover's); made once."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    print(f"costs: making {LITELLM_VENV.relative_to(REPO)} with {LITELLM_REQUIREMENT} (once; a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "--progress-bar", "off", LITELLM_REQUIREMENT], check=True)
    print("costs: LiteLLM installed", flush=True)
    return binary


def spillover_config(workdir: Path, stages_on: bool) -> Path:
    """One hosted-only route, ``bench``, at the responder (priced as gpt-4o-mini)."""
    config = {
        "models": [{"name": "unused-local", "source": "builtin:smollm2-135m-instruct"}],  # at least one; never called
        "embeddings": [],
        "providers": [{"name": "instant", "kind": "openai", "base_url": f"http://127.0.0.1:{RESPONDER_PORT}/v1",
                       "models": {"bench": "gpt-4o-mini"}}],
        "routes": {"bench": {"hosted": [{"provider": "instant"}]}},
        "auth": {"enabled": stages_on, "secret_file": str(workdir / "key-secret")},
        "stores": {"sqlite_path": str(workdir / "unused.db"), "spool_dir": str(workdir / "spool"),
                   **({"redis_url": REDIS_URL, "postgres_dsn": BENCH_DSN} if stages_on else {})},
        "costs": {"ledger": stages_on,
                  "budgets": [{"scope": "team", "name": TEAM, "daily_usd": 1e6, "monthly_usd": 1e7}] if stages_on else []},
        # The stages measured are auth, rate limits, budgets and the ledger; the cache has its own benchmark.
        "cache": {"enabled": False},
    }
    path = workdir / f"spillover-{'on' if stages_on else 'off'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def litellm_config(workdir: Path) -> Path:
    config = {
        "model_list": [{"model_name": "bench", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{RESPONDER_PORT}/v1", "api_key": "sk-unused"}}],
        "litellm_settings": {"telemetry": False},
        # It refuses to start without a master key; with no database, that one key is its auth.
        "general_settings": {"master_key": LITELLM_KEY},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def create_key(config: Path) -> str:
    """A key through the CLI, as an operator makes one; rpm and tpm far above the load."""
    out = subprocess.run([sys.executable, "-m", "spillover.cli", "keys", "--config", str(config), "create", "--user", "bench-user",
                          "--team", TEAM, "--rpm", "1000000", "--tpm", "1000000000"],
                         env=_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"spillover keys create failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)["key"]


@contextmanager
def bench_database() -> Iterator[str]:
    """A PostgreSQL database of the benchmark's own, dropped afterwards."""
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    try:
        yield BENCH_DSN
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        _clear_redis()


def _clear_redis() -> None:
    """Drop the counters the run left (only spillover's prefix, in the benchmark's Redis db)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter("spillover:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    for name in ("SPILLOVER_API_KEYS", "SPILLOVER_KEY_SECRET", "DATABASE_URL", "RAY_ADDRESS"):
        env.pop(name, None)
    return env


@contextmanager
def process(args: list[str], log: Path, port: int, key: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` as a child that serves chat completions on ``port``; stopped with SIGTERM."""
    child = subprocess.Popen(args, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(child, port, key, log)
        yield child
    finally:
        terminate(child, 30)


def wait_ready(child: subprocess.Popen[bytes], port: int, key: str | None, log: Path, timeout_s: float = 240) -> None:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{child.args[:3]} exited with {child.returncode}; log: {log}\n{log.read_text()[-3000:]}")
        try:
            if httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=headers, timeout=10, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{child.args[:3]} not ready on port {port}; log: {log}")


def load(port: int, rate: float, duration_s: float, args: argparse.Namespace, feature: str, outcomes: Path, key: str | None = None,
         ledger_dsn: str | None = None) -> tuple[dict, list[dict]]:
    """The load generator in its own process: its ledger check (with ``ledger_dsn``) and every
    measured request's raw row."""
    command = [sys.executable, str(BENCH / "costs_load.py"), f"http://127.0.0.1:{port}", "--rate", str(rate),
               "--duration-s", str(duration_s), "--warmup-s", str(args.warmup_s), "--feature", feature, "--outcomes", str(outcomes)]
    command += ["--key", key] if key else []
    command += ["--ledger-dsn", ledger_dsn] if ledger_dsn else []
    out = subprocess.run(command, env=_env(), check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    ledger = {k: result[k] for k in ("rows_written", "ledger_lag_s") if k in result}
    return ledger, [json.loads(line) for line in outcomes.read_text().splitlines()]


def plan(args: argparse.Namespace) -> list[tuple[str, str, float, float]]:
    """One round: (name, setup, rate, duration). The main setups at the offered rate, then, if
    asked, direct, spillover_on and LiteLLM again at a rate LiteLLM's one worker sustains here
    (at 200/s it saturates, and its figure is then a queue's, not its own cost)."""
    runs = [(s, s, args.rate, args.duration_s) for s in SETUPS]
    if args.sustained_rate:
        runs += [(f"{s}@{args.sustained_rate:g}", s, args.sustained_rate, args.sustained_duration_s) for s in SUSTAINED_SETUPS]
    return runs


def run_setup(name: str, setup: str, rate: float, duration_s: float, round_: int, args: argparse.Namespace, workdir: Path,
              key: str, litellm: Path) -> tuple[dict, list[dict]]:
    """Start ``setup`` (direct: nothing), load it, stop it: its ledger check and raw rows."""
    feature = f"r{round_}-{name}"
    outcomes = workdir / f"{name}-r{round_}.jsonl"
    if setup == "direct":
        return load(RESPONDER_PORT, rate, duration_s, args, feature, outcomes)
    log = workdir / f"{name}-r{round_}.log"
    if setup == "litellm":
        command = [str(litellm), "--config", str(litellm_config(workdir)), "--host", "127.0.0.1", "--port", str(PROXY_PORT), "--num_workers", "1"]
        with process(command, log, PROXY_PORT, LITELLM_KEY) as child:
            return load_with_cpu(child.pid, rate, duration_s, args, feature, outcomes, LITELLM_KEY)
    on = setup == "spillover_on"
    command = [sys.executable, str(BENCH / "costs_ingress.py"), str(spillover_config(workdir, on)), str(PROXY_PORT), "on" if on else "off"]
    with process(command, log, PROXY_PORT, key if on else None) as child:
        return load_with_cpu(child.pid, rate, duration_s, args, feature, outcomes, key if on else None, BENCH_DSN if on else None)


def load_with_cpu(pid: int, rate: float, duration_s: float, args: argparse.Namespace, feature: str, outcomes: Path,
                  key: str | None = None, ledger_dsn: str | None = None) -> tuple[dict, list[dict]]:
    """:func:`load` against the proxy on :data:`PROXY_PORT`, with the proxy's CPU per request."""
    before = cpu_seconds(pid)
    ledger, rows = load(PROXY_PORT, rate, duration_s, args, feature, outcomes, key, ledger_dsn)
    return ledger | per_request_cpu(cpu_seconds(pid) - before, rate, duration_s, args.warmup_s), rows


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far."""
    import psutil

    tree = psutil.Process(pid)
    return sum(p.cpu_times().user + p.cpu_times().system for p in [tree, *tree.children(recursive=True)])


def per_request_cpu(cpu_s: float, rate: float, duration_s: float, warmup_s: float) -> dict[str, float]:
    """The proxy's CPU per request over the load (warm-up included): how fast this host was. One
    asyncio process has one core, so at 200/s it keeps up only below 5 ms a request."""
    return {"proxy_cpu_ms_per_request": round(cpu_s * 1000 / (rate * (duration_s + warmup_s)), 3)}


def medians(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per setup, medians over rounds; *added* is taken per round against the direct run at the
    same rate in the same round."""
    med = {s: {k: median([r[k] for r in rs]) for k in ("p50_ms", "p99_ms", "requests_per_s", "errors", "late_sends")} for s, rs in runs.items()}
    for s, rs in runs.items():  # records from before the CPU reading have none
        if rs and all("proxy_cpu_ms_per_request" in r for r in rs):
            med[s]["proxy_cpu_ms_per_request"] = median([r["proxy_cpu_ms_per_request"] for r in rs])
    for s in runs:
        direct = runs["direct" + (s[s.index("@"):] if "@" in s else "")]
        for k in ("p50_ms", "p99_ms"):
            med[s][f"added_{k}"] = median([r[k] - d[k] for r, d in zip(runs[s], direct)])
    for k in ("p50_ms", "p99_ms"):  # the cost stages alone: on against off, round by round
        med["spillover_on"][f"stages_added_{k}"] = median([r[k] - o[k] for r, o in zip(runs["spillover_on"], runs["spillover_off"])])
    return med


def summarise(runs: dict[str, list[dict]], args: argparse.Namespace) -> dict[str, object]:
    med = medians(runs)
    ons = [r for s, rs in runs.items() if s.startswith("spillover_on") for r in rs]
    rows_ok = all(r["rows_written"] == r["sent"] for r in ons)
    lags = [r["ledger_lag_s"] for r in ons]
    lag = None if None in lags else max(lags)
    on, low = med["spillover_on"], f"@{args.sustained_rate:g}"
    rate_ok = on["requests_per_s"] >= 0.99 * args.rate and all(r["errors"] == 0 for r in runs["spillover_on"])
    figures: dict[str, object] = {
        # The figure: what the stages add (on against off); beside it, the whole ingress
        # against direct, the figure comparable with LiteLLM's.
        "added_p50_ms": round(on["stages_added_p50_ms"], 3),
        "added_p99_ms": round(on["stages_added_p99_ms"], 3),
        "ingress_added_p50_ms": round(on["added_p50_ms"], 3),
        "ingress_added_p99_ms": round(on["added_p99_ms"], 3),
        "requests_per_s": round(on["requests_per_s"], 1),
        "stages_off_added_p50_ms": round(med["spillover_off"]["added_p50_ms"], 3),
        "stages_off_added_p99_ms": round(med["spillover_off"]["added_p99_ms"], 3),
        "stages_off_requests_per_s": round(med["spillover_off"]["requests_per_s"], 1),
        "litellm_added_p50_ms": round(med["litellm"]["added_p50_ms"], 3),
        "litellm_added_p99_ms": round(med["litellm"]["added_p99_ms"], 3),
        "litellm_requests_per_s": round(med["litellm"]["requests_per_s"], 1),
        "rows_written_equals_requests_sent": rows_ok,
        "rows_written": [r["rows_written"] for r in ons],
        "requests_sent": [r["sent"] for r in ons],
        "ledger_lag_s": lag,
        "ledger_lag_s_by_run": lags,
        "offered_rate": args.rate, "duration_s": args.duration_s, "rounds": args.rounds,
        "goal_met": {
            "added_p50": on["stages_added_p50_ms"] <= GOAL_P50_MS,
            "added_p99": on["stages_added_p99_ms"] <= GOAL_P99_MS,
            "requests_per_s": rate_ok,
            "rows_written": rows_ok,
            "ledger_lag": lag is not None and lag <= GOAL_LAG_S,
        },
        "spillover_ray": None,
        "by_setup": med,
        "by_round": runs,
    }
    if args.sustained_rate:
        figures |= {
            "sustained_rate": args.sustained_rate,
            "sustained_added_p50_ms": round(med["spillover_on" + low]["added_p50_ms"], 3),
            "sustained_added_p99_ms": round(med["spillover_on" + low]["added_p99_ms"], 3),
            "sustained_litellm_added_p50_ms": round(med["litellm" + low]["added_p50_ms"], 3),
            "sustained_litellm_added_p99_ms": round(med["litellm" + low]["added_p99_ms"], 3),
        }
    return figures


def derive(header: dict, rows: list[dict]) -> dict[str, object]:
    """Every figure from the raw file: each run's summary from its rows (bench/costs_load.py's
    own :func:`summary`), with the ledger check the run recorded, then the medians."""
    args = argparse.Namespace(**header["settings"])
    by_run: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        by_run.setdefault((row["setup"], row["round"]), []).append(row)
    runs = {name: [summary(by_run[name, round_]) | header["ledger"][name][round_ - 1] for round_ in range(1, args.rounds + 1)]
            for name, *_ in plan(args)}
    # Why the machine was busy when the run began (measured anyway with --allow-busy); records
    # from before the check carry none.
    return summarise(runs, args) | {"busy_at_start": header.get("busy", {}).get("busy_at_start", [])}


def summary_table(figures: dict) -> str:
    rows = [(s, figures["rounds"], m["p50_ms"], m["p99_ms"], "-" if s.startswith("direct") else m["added_p50_ms"],
             "-" if s.startswith("direct") else m["added_p99_ms"], m["requests_per_s"], int(m["errors"]), int(m["late_sends"]),
             m.get("proxy_cpu_ms_per_request", "-"))
            for s, m in figures["by_setup"].items()]
    return table(["setup", "rounds", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "requests/s", "errors", "late sends",
                  "proxy CPU ms/request"], rows)


def note(figures: dict, args: argparse.Namespace) -> str:
    goals = figures["goal_met"]

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.1f}" if b > 0 else "n/a (spillover's added figure is not above zero)"

    text = (
        f"Open loop: {args.rate:g} requests/s at a fixed spacing for {args.duration_s:g} s after a {args.warmup_s:g} s warm-up, "
        f"non-streamed chat completions, latency from each request's due time (aiohttp, keep-alive pool); {args.rounds} rounds "
        f"in the order {', '.join(n for n, *_ in plan(args))}; medians over rounds; added = the setup's percentile minus "
        f"direct's at the same rate in the same round. Upstream: an instant OpenAI-compatible responder "
        f"(bench/instant_responder.py). Every process (load, proxy, responder, Redis, PostgreSQL) shares the 2 cores. Proxy CPU "
        f"ms/request: the proxy's process tree's CPU over the load (warm-up and the ledger check included) per request sent; "
        f"this host's speed varies, and one asyncio process has one core, so above ~5 ms it cannot keep 200/s.\n\n"
        f"- The cost stages (auth + rate limit + team budget + ledger, Redis + PostgreSQL), spillover_on minus spillover_off per "
        f"round: added p50 {figures['added_p50_ms']} ms (goal ≤ {GOAL_P50_MS:g}: {met(goals['added_p50'])}), p99 "
        f"{figures['added_p99_ms']} ms (goal ≤ {GOAL_P99_MS:g}: {met(goals['added_p99'])}); {figures['requests_per_s']} requests/s "
        f"achieved (goal {args.rate:g} with no errors: {met(goals['requests_per_s'])}). The whole ingress with them, against "
        f"direct: p50 {figures['ingress_added_p50_ms']} ms, p99 {figures['ingress_added_p99_ms']} ms.\n"
        f"- spillover_off (no auth, budgets or ledger): added p50 {figures['stages_off_added_p50_ms']} ms, p99 "
        f"{figures['stages_off_added_p99_ms']} ms.\n"
        f"- Ledger rows written = requests sent: {met(figures['rows_written_equals_requests_sent'])} ({figures['rows_written']} vs "
        f"{figures['requests_sent']}); ledger lag (last response → all its rows in PostgreSQL), worst run: {figures['ledger_lag_s']} s "
        f"(goal ≤ {GOAL_LAG_S:g} s: {met(goals['ledger_lag'])}).\n"
        f"- LiteLLM's proxy ({LITELLM_REQUIREMENT.split('==')[-1]}, one worker, master key, no database) over the same responder at "
        f"{args.rate:g}/s: added p50 {figures['litellm_added_p50_ms']} ms, p99 {figures['litellm_added_p99_ms']} ms, "
        f"{figures['litellm_requests_per_s']} requests/s achieved; its added p50 ÷ spillover_on's: "
        f"{ratio(figures['litellm_added_p50_ms'], figures['ingress_added_p50_ms'])}.\n"
    )
    if args.sustained_rate:
        text += (
            f"- At {args.sustained_rate:g}/s ({args.sustained_duration_s:g} s), a rate LiteLLM's one worker sustains here: spillover_on "
            f"added p50 {figures['sustained_added_p50_ms']} ms, p99 {figures['sustained_added_p99_ms']} ms; LiteLLM added p50 "
            f"{figures['sustained_litellm_added_p50_ms']} ms, p99 {figures['sustained_litellm_added_p99_ms']} ms; ratio of p50s "
            f"{ratio(figures['sustained_litellm_added_p50_ms'], figures['sustained_added_p50_ms'])}.\n"
        )
    return text + ("- Not measured: the ingress behind Ray Serve's proxy (the issue's 6.7 ms p50 is that proxy alone); it needs a Ray "
                   "cluster of its own beside this load on 2 cores.")


SETTINGS = ("rate", "duration_s", "rounds", "warmup_s", "sustained_rate", "sustained_duration_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    add_busy_arguments(parser)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--sustained-rate", type=float, default=40.0, help="also compare at this rate (0: not)")
    parser.add_argument("--sustained-duration-s", type=float, default=20.0)
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, summary_table)
    refuse_dirty_tree(args.allow_dirty)
    busy = refuse_busy_machine(args.allow_busy, args.wait_quiet_s)
    litellm = ensure_litellm()
    header: dict = {"settings": {k: getattr(args, k) for k in SETTINGS}, "ledger": {name: [] for name, *_ in plan(args)}, "busy": busy}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp, bench_database():
        workdir = Path(tmp)
        key = create_key(spillover_config(workdir, True))
        with process([sys.executable, str(BENCH / "instant_responder.py"), str(RESPONDER_PORT)], workdir / "responder.log", RESPONDER_PORT):
            for round_ in range(1, args.rounds + 1):
                for name, setup, rate, duration_s in plan(args):
                    ledger, outcomes = run_setup(name, setup, rate, duration_s, round_, args, workdir, key, litellm)
                    header["ledger"][name].append(ledger)
                    rows += [{"setup": name, "round": round_, **o} for o in outcomes]
                    print(f"round {round_} {name}: {json.dumps(summary(outcomes) | ledger)}", flush=True)
    figures = derive(header, rows)
    text = summary_table(figures)
    print(text)
    print(json.dumps(figures["goal_met"]))
    record(NAME, "Costs: what the ingress adds, stages off and on, beside LiteLLM's proxy", figures,
           text + "\n\n" + note(figures, argparse.Namespace(**header["settings"])), merge=False, allow_dirty=args.allow_dirty,
           raw=(header, rows))


if __name__ == "__main__":
    main()
