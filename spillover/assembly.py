"""Assembly of one ingress: every subsystem built from its own config section and the shared
stores, and the stages put in order.

Stage order (../shared/DESIGN.md): authenticate, experiment (with experiments), admit, cache, route (for routed names), compress (for compressing routes), dispatch,
respond; settle runs for every stage entered, then the sinks (ledger, metrics, access log). A new
stage is built here from its section and inserted in the ``stages`` list of :func:`assemble`; nothing else in
the request path changes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from access.access import Access
from access.authenticate import Authenticate, static_keys_from_env
from contracts.errors import ConfigError
from contracts.local_engines import LocalEngines
from contracts.pipeline import Pipeline, Stage
from contracts.tokens import estimate_prompt_tokens
from costbook.costbook import Costbook
from costlevers.batch.api import identify_with
from costlevers.batch.lever import BatchLever
from costlevers.cache.lever import CacheLever, route_policies
from costlevers.compression.lever import compress_stage
from costlevers.routing.lever import routing_stage
from experiments.feedback import FeedbackStore
from experiments.report import all_reports
from experiments.stage import ExperimentStage
from experiments.state import ExperimentSwitches
from fallback.breaker import CircuitBreaker
from fallback.decision import Route
from fallback.failover import Failover
from fallback.providers.build import build_provider
from fallback.providers.interface import Provider
from monitor.dashboard_api import DashboardSources
from monitor.evaluator import Monitor
from monitor.view import strongest_prices
from serving.logs import access_log
from serving.metrics import RequestMetrics
from serving.prompt_tokens import PromptTokenCounter, prompt_token_counter
from serving.stages.dispatch import Dispatch
from serving.stages.respond import Respond
from spillover.batch_lines import BatchBudget, BatchLines, InteractiveInFlight
from spillover.config import SpilloverConfig
from spillover.experiment_routes import with_experiment_routes
from spillover.public_names import PublicNames
from spillover.route_table import cache_routes, hosted_models, local_sources, replica_shapes, routes_from_config
from stores.shared import SharedStores

__all__ = ["IngressParts", "assemble"]


@dataclass
class IngressParts:
    """What one ingress replica runs: its subsystems, the route table and the pipeline."""

    config: SpilloverConfig
    engines: LocalEngines
    routes: dict[str, Route]
    providers: dict[str, Provider]
    breakers: dict[str, CircuitBreaker]
    stores: SharedStores
    registry: CollectorRegistry
    metrics: RequestMetrics
    authenticate: Authenticate
    access: Access | None
    costbook: Costbook | None
    cache: CacheLever
    pipeline: Pipeline
    #: What a client may send in ``model`` (aliases included) and each route's output limits.
    names: PublicNames
    #: Per route with a local model: its prompt-token counter (chars/4 where no tokenizer loaded).
    prompt_counters: dict[str, PromptTokenCounter] = field(default_factory=dict)
    #: Files and batches (with keys and costs on: they live in the ledger's database).
    batch: BatchLever | None = None
    #: Rollups and alerts over the ledger, and the dashboard's sources (with the ledger on).
    monitor: Monitor | None = None
    dashboard: DashboardSources | None = None
    #: Experiments (with keys and costs on: their state and feedback live in the ledger's database).
    experiments: ExperimentSwitches | None = None
    feedback: FeedbackStore | None = None

    def count_prompt_tokens(self, model: str) -> PromptTokenCounter:
        """The route's counter: its local model's tokenizer, else chars/4."""
        return self.prompt_counters.get(model, estimate_prompt_tokens)

    async def start(self) -> None:
        if self.access is not None:
            self.access.start()
        if self.costbook is not None:
            self.costbook.start(self.engines.replica_time)
        await self.cache.start()
        if self.batch is not None:
            self.batch.start()
        if self.monitor is not None:
            self.monitor.start()
        if self.experiments is not None:
            self.experiments.start()

    async def aclose(self) -> None:
        if self.experiments is not None:
            await self.experiments.aclose()
        if self.monitor is not None:
            await self.monitor.aclose()
        if self.batch is not None:
            await self.batch.aclose()
        await self.cache.aclose()
        for provider in self.providers.values():
            await provider.aclose()
        if self.costbook is not None:
            await self.costbook.aclose()
        if self.access is not None:
            await self.access.aclose()
        await self.stores.aclose()


def breakers_from_config(config: SpilloverConfig) -> dict[str, CircuitBreaker]:
    f = config.failover
    return {
        p.name: CircuitBreaker(consecutive_failures=f.breaker_consecutive_failures, failure_rate=f.breaker_failure_rate,
                               window=f.breaker_window, min_samples=f.breaker_min_samples, cooldown_s=f.breaker_cooldown_s)
        for p in config.providers
    }


def assemble(config: SpilloverConfig, engines: LocalEngines, *, providers: Mapping[str, Provider] | None = None,
             keys_and_costs: bool = True) -> IngressParts:
    """Build every subsystem of one ingress over ``engines``.

    ``keys_and_costs``: API keys from the database, rate limits, budgets and the ledger; without,
    only static keys from the environment and no ledger (unit tests of the request path).
    """
    names = PublicNames.from_config(config)
    config, experiment_plans = with_experiment_routes(config)  # each variant a route of its own; none public
    stores = SharedStores(config.stores)
    routes = routes_from_config(config)
    providers = {p.name: build_provider(p) for p in config.providers} if providers is None else dict(providers)
    breakers = breakers_from_config(config)
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry, engine_states=engines.all_states)
    access = costbook = None
    if keys_and_costs:
        access = Access.from_config(config.auth, stores.database())
        authenticate = access.authenticate
        costbook = Costbook.from_config(config.costs, stores, access.keys, replica_shapes=replica_shapes(config),
                                        hosted_models=hosted_models(config, routes))
        costbook.attach(registry)
    else:
        authenticate = Authenticate(static_keys_from_env(config.auth.keys_env), enabled=config.auth.enabled)
    cache = CacheLever.from_config(config.cache, route_policies(config.cache, cache_routes(config, routes)), stores, engines.embed,
                                   embedding_model=config.embeddings[0].name if config.embeddings else None, registry=registry)
    failover = Failover(breakers, attempts_per_target=config.failover.attempts_per_target, deadline_s=config.failover.deadline_s)
    dispatch = Dispatch(engines, routes, providers=providers, breakers=breakers, failover=failover,
                        embedding_models=[e.name for e in config.embeddings], local_start_timeout_s=config.failover.local_start_timeout_s)
    # Tokenizers load here, before the replica takes traffic (serving.prompt_tokens).
    prompt_counters = {name: prompt_token_counter(source) for name, source in local_sources(config, routes).items()}
    def recount(model: str, body: dict[str, Any]) -> int:
        return prompt_counters.get(model, estimate_prompt_tokens)(body)

    routed = {name: rc.routing for name, rc in config.routes.items() if rc.routing is not None}
    route = [routing_stage(routed, engines.embed, default_embedding_model=config.embeddings[0].name if config.embeddings else None,
                           recount=recount, registry=registry)] if routed else []
    compressing = {name: rc.compression for name, rc in config.routes.items() if rc.compression is not None}
    compress = [compress_stage(compressing, recount=recount, registry=registry)] if compressing else []
    switches = feedback = None
    if keys_and_costs and config.costs.ledger:  # feedback and experiment state live beside the ledger
        feedback = FeedbackStore(stores.database().engine)
        if experiment_plans:
            switches = ExperimentSwitches(stores.database().engine, {n: e.running for n, e in config.experiments.items()})
    elif experiment_plans:
        raise ConfigError("experiments need keys and costs with the ledger on (their reports are ledger queries)")
    experiment = [ExperimentStage(experiment_plans, switches.running)] if switches is not None else []
    stages: list[Stage] = [authenticate, *experiment, *([costbook.admit] if costbook else []), cache.stage, *route, *compress, dispatch,
                           Respond()]
    interactive = InteractiveInFlight()
    sinks = [*([costbook.record] if costbook else []), metrics.finished, access_log, interactive.finished]
    pipeline = Pipeline(stages, sinks=sinks, starters=[metrics.started, interactive.started])
    batch = None
    if keys_and_costs and config.batch.enabled:  # batches live in the ledger's database
        priority = [m.name for m in config.models if m.engine_kwargs.get("scheduling_policy") == "priority"]
        assert costbook is not None  # with keys and costs
        lines = BatchLines(pipeline, engines, routes, names, prompt_counters, interactive, config.batch, after=authenticate.name,
                           priority_models=priority, charge=costbook.admit.charge)
        hosted = config.batch.hosted
        hand_off = lines.hand_off(next(p for p in config.providers if p.name == hosted.provider)) if hosted is not None else None
        batch = BatchLever(config.batch, stores.database(), run_line=lines.run, headroom=lines.headroom,
                           identify=identify_with(authenticate), models=lines.models, hand_off=hand_off,
                           budget=BatchBudget(costbook.admit, names, prompt_counters))
    monitor = dashboard = None
    if costbook is not None and config.costs.ledger:
        assert access is not None  # with keys and costs
        engine = stores.database().engine
        monitor = Monitor(config.monitor, engine, config.costs.budgets)
        if config.monitor.dashboard:
            dashboard = DashboardSources(
                engine, config.auth.enabled, access.admin_key, list(config.costs.budgets),
                strongest_prices(hosted_models(config, routes), costbook.pricer.table), engines.all_states,
                cache.stage.steering_states, config.monitor.gpu_metrics_url, listed_price=costbook.pricer.table.price,
                experiment_reports=functools.partial(all_reports, engine, config.experiments))
    return IngressParts(config, engines, routes, providers, breakers, stores, registry, metrics, authenticate, access, costbook, cache, pipeline,
                        names, prompt_counters, batch, monitor, dashboard, switches, feedback)

