"""``spillover``: the command line. ``serve`` runs the platform in the foreground; ``scale``
sets a local model's replica count on a running one (draining before zero); ``simulate``
replays a trace through the fleet policies; ``costs report`` and ``costs savings`` read the
ledger; ``experiments`` lists, starts, stops and reports A/B experiments; ``keys``
creates, lists and revokes API keys; ``plan`` weighs self-hosting against an API; ``k8s
render`` writes the RayService's serveConfigV2 from the same config.

``spillover serve`` starts Ray locally (or joins ``RAY_ADDRESS``), deploys the Serve
application built from the YAML config, prints the endpoint, and on SIGTERM or Ctrl-C deletes
the application gracefully, so in-flight streams finish (up to
``ingress.graceful_shutdown_timeout_s``) before it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from autoscaler.config import AutoscalerConfig
from contracts.errors import ConfigError
from spillover.config import SpilloverConfig, load_config

if TYPE_CHECKING:
    from autoscaler.actuator import ServeActuator

__all__ = ["main"]

logger = logging.getLogger("spillover.cli")
#: Where ``spillover serve`` sends the libraries' log lines (beside the embedded default's SQLite).
DEFAULT_LOG_FILE = "~/.cache/spillover/serve.log"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spillover", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the platform in the foreground")
    serve_cmd.add_argument("--config", help="YAML config (default: $SPILLOVER_CONFIG or the embedded default)")
    serve_cmd.add_argument("--print-serve-config", action="store_true", help="print the Ray Serve config and exit")
    serve_cmd.add_argument("--log-file", default=DEFAULT_LOG_FILE,
                           help=f"where Ray's, vLLM's and other libraries' log lines go (default {DEFAULT_LOG_FILE}); the console keeps "
                           "spillover's own progress")
    scale_cmd = commands.add_parser("scale", help="set a local model's replicas on a running spillover (joins RAY_ADDRESS)")
    scale_cmd.add_argument("model", help="public model name, as in the config's models")
    scale_cmd.add_argument("replicas", type=int, help="target replicas; 0 drains first, so no request fails")
    autoscale_cmd = commands.add_parser("autoscale", help="run the autoscaler loop against a running spillover (joins RAY_ADDRESS)")
    autoscale_cmd.add_argument("--config", help="the same YAML `spillover serve` runs")
    autoscale_cmd.add_argument("--dry-run", action="store_true", help="decide and log, never scale")
    simulate_cmd = commands.add_parser("simulate", help="replay a trace through the fleet policies (autoscaler/replay.py)")
    from autoscaler.replay import add_arguments

    add_arguments(simulate_cmd)
    costs_cmd = commands.add_parser("costs", help="what requests cost, from the ledger").add_subparsers(dest="costs_command", required=True)
    from costbook.report import add_arguments as add_report_arguments

    add_report_arguments(costs_cmd.add_parser("report", help="cost, tokens, spill and waste by user, team, feature, model or destination"))
    savings_cmd = costs_cmd.add_parser("savings", help="spend against every request at its route's strongest model, per lever")
    savings_cmd.add_argument("--config", help="the YAML `spillover serve` runs (for its stores, routes and prices)")
    savings_cmd.add_argument("--since", default="30d", help="ISO date or time (UTC), or an age such as 24h, 7d (default 30d)")
    savings_cmd.add_argument("--format", choices=("table", "json"), default="table")
    experiments_cmd = commands.add_parser("experiments", help="A/B experiments: list, start, stop, report")
    experiments_cmd.add_argument("--config", help="the YAML `spillover serve` runs")
    experiments_sub = experiments_cmd.add_subparsers(dest="experiments_command", required=True)
    experiments_sub.add_parser("list", help="configured experiments and whether each runs")
    for verb in ("start", "stop"):
        experiments_sub.add_parser(verb, help=f"{verb} splitting traffic (every replica within seconds)").add_argument("name")
    report_cmd = experiments_sub.add_parser("report", help="variants side by side, sequential cost verdict, quality non-inferiority")
    report_cmd.add_argument("name")
    report_cmd.add_argument("--format", choices=("table", "json"), default="table")
    from costbook.plan import add_arguments as add_plan_arguments

    add_plan_arguments(commands.add_parser("plan", help="self-host vs API break-even from measured throughput"))
    keys_cmd = commands.add_parser("keys", help="create, list and revoke API keys (in the configured store)")
    keys_cmd.add_argument("--config", help="the YAML `spillover serve` runs (for its stores and key secret)")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True)
    create_cmd = keys_sub.add_parser("create", help="make a key; it is printed once")
    create_cmd.add_argument("--user", required=True)
    create_cmd.add_argument("--team", default="default")
    create_cmd.add_argument("--budget", type=float, help="US dollars")
    create_cmd.add_argument("--rpm", type=int, help="requests per minute")
    create_cmd.add_argument("--tpm", type=int, help="tokens per minute (prompt + max_tokens)")
    keys_sub.add_parser("list", help="every key, without secrets")
    keys_sub.add_parser("revoke", help="revoke a key (every ingress replica within auth.refresh_s)").add_argument("key_id")
    from spillover.k8s_render import add_arguments as add_k8s_arguments

    add_k8s_arguments(commands.add_parser("k8s", help="Kubernetes manifests from the config (k8s/README.md)"))
    args = parser.parse_args(argv)

    from serving.logs import configure_logging

    configure_logging()
    if args.command == "scale":
        return scale(args.model, args.replicas)
    if args.command == "plan":
        from costbook.plan import run as run_plan

        run_plan(args)
        return 0
    if args.command == "simulate":
        from autoscaler.replay import run

        run(args)
        return 0
    if args.command == "k8s":
        return k8s_render(args.config, args.rayservice)
    try:
        config = load_config(args.config or os.environ.get("SPILLOVER_CONFIG"))
    except ConfigError as exc:
        print(f"spillover: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "autoscale":
        return autoscale(config, args.dry_run)
    if args.command == "costs":
        if args.costs_command == "savings":
            return costs_savings(config, args.since, args.format)
        return costs_report(config, args.by, args.since, args.format)
    if args.command == "experiments":
        return experiments(config, args)
    if args.command == "keys":
        return keys(config, args)
    if args.print_serve_config:
        from spillover.serve_config import serve_config

        yaml.safe_dump(serve_config(config), sys.stdout, sort_keys=False)
        return 0
    return serve_forever(config, Path(args.log_file).expanduser())


def k8s_render(path: str, rayservice: str) -> int:
    from spillover.k8s_render import rayservice_patch

    try:
        config = load_config(path, env={})  # the committed output must not depend on the shell
    except ConfigError as exc:
        print(f"spillover: config error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(rayservice_patch(config, rayservice))
    return 0


def costs_report(config: SpilloverConfig, by: str, since: str, fmt: str) -> int:
    from costbook.report import parse_since, render, report_rows
    from stores.sql import Database

    database = Database.open(config.stores)
    try:
        with database.engine.connect() as connection:
            rows = report_rows(connection, by, parse_since(since))
    finally:
        database.dispose()
    print(render(rows, by, fmt), end="")
    return 0


def costs_savings(config: SpilloverConfig, since: str, fmt: str) -> int:
    import json

    from costbook.prices import DEFAULT_PRICES, PriceTable
    from costbook.report import parse_since
    from costbook.savings import savings
    from monitor.view import strongest_prices
    from spillover.route_table import hosted_models, routes_from_config
    from stores.sql import Database

    table = PriceTable.load(Path(config.costs.price_table).expanduser() if config.costs.price_table else DEFAULT_PRICES)
    strongest = strongest_prices(hosted_models(config, routes_from_config(config)), table)
    database = Database.open(config.stores)
    try:
        with database.engine.connect() as connection:
            result = savings(connection, parse_since(since), strongest, table.price)
    finally:
        database.dispose()
    print(json.dumps(result, indent=2) if fmt == "json" else _savings_table(result), end="\n")
    return 0


def _savings_table(result: dict) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table("lever", "saved USD", "share of the strongest-model spend",
                  title=f"since {result['since']}: spent {result['actual_usd']:.4f} USD against {result['strongest_usd']:.4f} at the "
                  f"strongest models' list prices ({result['requests']} requests)")
    for lever, v in result["by_lever"].items():
        table.add_row(lever, f"{v['usd']:.4f}", "-" if v["share"] is None else f"{v['share']:.1%}")
    share = result["total_share"]
    table.add_row("total", f"{result['saving_usd']:.4f}", "-" if share is None else f"{share:.1%}")
    console = Console(record=True, width=140)
    with console.capture() as captured:
        console.print(table)
    return captured.get()


def experiments(config: SpilloverConfig, args: argparse.Namespace) -> int:
    import json

    from experiments.report import experiment_report, outcomes, render
    from experiments.state import ExperimentSwitches
    from stores.sql import Database

    name = getattr(args, "name", None)
    if name is not None and name not in config.experiments:
        print(f"spillover: no experiment {name!r} in the config (known: {sorted(config.experiments)})", file=sys.stderr)
        return 1
    database = Database.open(config.stores)
    try:
        switches = ExperimentSwitches(database.engine, {n: e.running for n, e in config.experiments.items()})
        if args.experiments_command == "report":
            with database.engine.connect() as connection:
                report = experiment_report(name, config.experiments[name], outcomes(connection, name))
            print(render(report, args.format), end="")
            return 0
        if args.experiments_command in ("start", "stop"):
            switches.set(name, args.experiments_command == "start")
        switches.load()
        print(json.dumps([{"name": n, "route": e.route, "running": switches.running(n)} for n, e in config.experiments.items()], indent=2))
    finally:
        database.dispose()
    return 0


def keys(config: SpilloverConfig, args: argparse.Namespace) -> int:
    import json

    from pydantic import ValidationError

    from access.admin_api import CreateKey, key_json
    from access.keys import KeyStore, load_key_secret
    from stores.sql import Database

    database = Database.open(config.stores)
    try:
        key_store = KeyStore(database.engine, load_key_secret(config.auth.secret_env, config.auth.secret_file))
        if args.keys_command == "create":
            try:  # the admin API's own checks (ranges the database can hold)
                wanted = CreateKey(user=args.user, team=args.team, budget_usd=args.budget, rpm=args.rpm, tpm=args.tpm)
            except ValidationError as exc:
                first = exc.errors()[0]
                print(f"spillover: --{first['loc'][0]}: {first['msg']}", file=sys.stderr)
                return 2
            budget = None if wanted.budget_usd is None else round(wanted.budget_usd * 1_000_000)
            key, record = key_store.create(wanted.user, wanted.team, budget_micro_usd=budget, rpm=wanted.rpm, tpm=wanted.tpm)
            print(json.dumps({**key_json(record), "key": key}, indent=2))
            print("spillover: store the key now; it is not shown again.", file=sys.stderr)
        elif args.keys_command == "list":
            print(json.dumps([key_json(r) for r in key_store.records()], indent=2))
        elif not key_store.revoke(args.key_id):
            print(f"spillover: no active key {args.key_id!r}", file=sys.stderr)
            return 1
    finally:
        database.dispose()
    return 0


def serve_forever(config: SpilloverConfig, log_file: Path) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from stores.builtin_models import resolve_source

    for model in [*config.models, *config.embeddings]:  # convert builtins here, where the progress bar shows
        resolve_source(model.source)

    console = sys.stdout

    def say(text: str) -> None:
        print(f"spillover: {text}", file=console, flush=True)

    say(f"starting Ray Serve (Ray's, vLLM's and other libraries' logs: {log_file})")
    started = time.monotonic()
    joined = bool(os.environ.get("RAY_ADDRESS"))
    with libraries_logging_to(log_file):
        import ray
        from ray import serve

        from contracts.deployments import APP_NAME
        from serving.state_board import reset_board
        from spillover.application import build_app

        if joined:
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        else:
            # The engine takes one logical CPU; a larger logical count lets the ingress, proxy and
            # controller schedule beside it on a 2-core laptop (they are mostly idle).
            ray.init(num_cpus=max(8, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
        # After ray.init: Ray's core worker installs its own SIGTERM handler, which exits at once.
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        serve.start(http_options={"host": config.server.host, "port": config.server.port,
                                  "request_timeout_s": config.server.request_timeout_s})
        say(f"deploying {', '.join(m.name for m in config.models)} ...")
        reset_board(APP_NAME)  # a drain mark or replica left by an earlier deployment must not count
        serve.run(
            build_app(config.model_dump(mode="json")),
            name=APP_NAME,
            route_prefix="/",
            blocking=False,
            external_scaler_enabled=True,  # replica counts come from autoscaler.actuator
        )
    say(f"ready in {time.monotonic() - started:.1f}s at http://{config.server.host}:{config.server.port}/v1")

    while not stop.wait(1.0):
        pass
    say("draining in-flight requests ...")
    serve.delete(APP_NAME)
    reset_board(APP_NAME)
    if not joined:
        serve.shutdown()
        ray.shutdown()
    say("stopped")
    return 0


@contextlib.contextmanager
def libraries_logging_to(log_file: Path) -> Iterator[None]:
    """While the libraries import and start, point stdout and stderr at ``log_file``.

    Why: Ray Serve LLM's import puts a JSON handler on the root logger, bound to whatever
    ``sys.stderr`` is then, and vLLM's, Ray's and Serve's own handlers bind to the streams of
    the moment too; so their lines (Alembic's plugin setup, Triton notices, Serve's deployment
    options) land in the file for the rest of the process, and the console keeps spillover's own
    progress lines."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    stream = log_file.open("a", buffering=1)  # held open: the handlers keep writing to it
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield


def autoscale(config: SpilloverConfig, dry_run: bool) -> int:
    """Run the control loop in the foreground until interrupted."""
    import asyncio

    import ray
    from prometheus_client import start_http_server

    from autoscaler.loop import ControlLoop, policy_for
    from autoscaler.prometheus import PrometheusSignals

    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=False)
    settings = config.autoscaler
    loop = ControlLoop(
        {m.name: policy_for(m.replicas, m.autoscaling) for m in config.models},
        PrometheusSignals(settings.prometheus_url, timeout_s=settings.query_timeout_s, window=settings.rate_window),
        actuator_for(settings),
        cold_start_s={m.name: m.autoscaling.cold_start_s for m in config.models},
        dry_run=dry_run or settings.dry_run,
    )
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=loop.metrics.registry)
    print(f"spillover: autoscaling {', '.join(m.name for m in config.models)} every {settings.tick_s:g}s"
          f"{' (dry run)' if dry_run or settings.dry_run else ''}", flush=True)
    try:
        asyncio.run(loop.run_forever(settings.tick_s))
    except KeyboardInterrupt:
        pass
    return 0


def actuator_for(settings: AutoscalerConfig) -> ServeActuator:
    """Serve's controller directly, or, with ``autoscaler.rayservice`` set, the RayService that
    KubeRay keeps applying (so a head restart or an upgrade does not undo the counts)."""
    from autoscaler.actuator import ServeActuator
    from contracts.deployments import APP_NAME
    from serving.state_board import BoardDrainMarks

    if settings.rayservice is None:
        return ServeActuator(BoardDrainMarks(APP_NAME))
    from autoscaler.rayservice import KubeApi, RayServiceActuator

    api = KubeApi.in_cluster()
    return RayServiceActuator(settings.rayservice, settings.rayservice_namespace or api.own_namespace(), api)


def scale(model: str, replicas: int) -> int:
    import asyncio

    import ray

    from autoscaler.actuator import ServeActuator
    from contracts.deployments import APP_NAME
    from serving.state_board import BoardDrainMarks

    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=False)
    actuator = ServeActuator(BoardDrainMarks(APP_NAME))
    try:
        asyncio.run(actuator.set_replicas(model, replicas))
        counts = asyncio.run(actuator.counts(model))
    except (LookupError, ValueError) as exc:
        print(f"spillover: {exc}", file=sys.stderr)
        return 2
    print(f"spillover: {model} target {replicas}; now running {counts.running}, starting {counts.starting}, stopping {counts.stopping}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
