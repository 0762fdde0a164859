"""The one YAML file that configures spillover, validated once into typed models.

Operator config forbids unknown keys (a typo fails loudly at start). Environment variables
override any field: ``SPILLOVER__SERVER__PORT=9000`` sets ``server.port``; list items are
addressed by index (``SPILLOVER__MODELS__0__REPLICAS__MAX=4``). Values are parsed as YAML
scalars, so ``true``, ``4`` and ``0.5`` keep their types.

Secrets never live here: provider keys come from the environment or a secret file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from costlevers.cache.config import CacheConfig, RouteCacheConfig
from fallback.providers.config import ProviderConfig
from serving.errors import ConfigError

__all__ = [
    "AuthConfig",
    "EmbeddingModelConfig",
    "FailoverConfig",
    "HostedTargetConfig",
    "IngressConfig",
    "ModelConfig",
    "ReplicaConfig",
    "RouteConfig",
    "ServerConfig",
    "SpilloverConfig",
    "StoresConfig",
    "ENV_PREFIX",
    "load_config",
    "parse_config",
]

ENV_PREFIX = "SPILLOVER__"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL_NAME = "all-minilm-l6-v2"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = Field("127.0.0.1", description="Address Serve's HTTP proxy binds.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(8000, description="HTTP port.")
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        4 * 1024 * 1024, description="Request bodies over this size get 413."
    )
    request_timeout_s: Annotated[float, Field(gt=0)] = Field(
        600.0, description="Serve's end-to-end request timeout; covers the longest stream."
    )


class IngressConfig(_Strict):
    num_replicas: Annotated[int, Field(ge=1)] = 1
    max_ongoing_requests: Annotated[int, Field(ge=1)] = Field(
        256, description="Concurrent requests per ingress replica (Serve's default is 5)."
    )
    num_cpus: Annotated[float, Field(ge=0)] = Field(
        0.1, description="Logical CPUs reserved for each ingress replica."
    )
    graceful_shutdown_timeout_s: Annotated[float, Field(gt=0)] = Field(
        120.0, description="How long a stopping replica waits for in-flight streams."
    )


class ReplicaConfig(_Strict):
    min: Annotated[int, Field(ge=0)] = 1
    max: Annotated[int, Field(ge=1)] = 1
    initial: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replicas at deploy time; defaults to min (at least one)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.initial is not None and not self.min <= self.initial <= self.max:
            raise ValueError(f"initial ({self.initial}) must lie in [min, max] = [{self.min}, {self.max}]")
        return self

    @property
    def at_deploy(self) -> int:
        return self.initial if self.initial is not None else max(self.min, 1)


class AutoscalingConfig(_Strict):
    """The scaling policy's knobs for one model (autoscaler.policy.PolicyConfig); bounds come
    from ``replicas``."""

    target_ongoing_per_replica: Annotated[float, Field(gt=0)] = Field(8.0, description="Requests one replica holds at its best.")
    max_kv_cache_usage: Annotated[float, Field(gt=0, le=1)] = 0.9
    ttft_p99_target_s: Annotated[float, Field(gt=0)] | None = None
    up_window_s: Annotated[float, Field(ge=0)] = 0.0
    down_window_s: Annotated[float, Field(ge=0)] = 300.0
    idle_to_zero_s: Annotated[float, Field(ge=0)] = 600.0
    scale_up_headroom: Annotated[float, Field(ge=0)] = 0.3
    scale_down_below: Annotated[float, Field(gt=0, le=1)] = 0.5
    cold_start_s: Annotated[float, Field(ge=0)] = Field(60.0, description="Look-ahead for the arrival trend.")
    min_marginal_utilisation: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="A replica past the first only for demand filling this share of its target (the prices' break-even)."
    )


class ModelConfig(_Strict):
    name: str = Field(description="Public model name clients send in `model`.")
    source: str = Field(
        description="`builtin:<name>` (shipped in a package), a local folder, or a hub id "
        "(clusters only; the embedded default never downloads)."
    )
    accelerator: Literal["cpu", "gpu"] | str = Field(
        "cpu", description="`cpu`, `gpu`, or a Ray accelerator type such as `A100` or `H100`."
    )
    gpus_per_replica: Annotated[int, Field(ge=0)] = 0
    cpus_per_replica: Annotated[float, Field(gt=0)] = 1.0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="`auto` picks from the hardware (see serving.hardware)."
    )
    max_model_len_tokens: Annotated[int, Field(ge=16)] = 2048
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Passed to vLLM's engine as they are."
    )
    replicas: ReplicaConfig = ReplicaConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    max_ongoing_requests: Annotated[int, Field(ge=1)] = Field(
        64, description="Requests Serve sends one engine replica at once."
    )
    engine_env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment for the engine's processes."
    )
    stream_batching_interval_ms: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="How long Ray Serve LLM gathers stream chunks before sending them on; "
        "unset keeps Ray's default (50 ms). Shorter means lower TTFT for more messages.",
    )
    tool_call_parser: str | None = Field(
        None,
        description="vLLM tool-call parser for this model (e.g. `hermes`); without one the engine "
        "rejects every `tool_choice` but `none`.",
    )
    usd_per_replica_hour: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="What one replica costs an hour; default: its GPUs (or CPUs) at the price table's `local` prices.",
    )

    @model_validator(mode="after")
    def _gpu_count(self) -> ModelConfig:
        if self.accelerator != "cpu" and self.gpus_per_replica == 0:
            raise ValueError(f"accelerator {self.accelerator!r} needs gpus_per_replica >= 1")
        if self.accelerator == "cpu" and self.gpus_per_replica:
            raise ValueError("accelerator 'cpu' takes gpus_per_replica 0")
        return self


class EmbeddingModelConfig(_Strict):
    name: str = Field(description="Public model name for `POST /v1/embeddings`.")
    source: str = Field(description="`builtin:<name>` (shipped in a package) or a local folder.")
    max_batch_size: Annotated[int, Field(ge=1)] = Field(
        32, description="Inputs embedded in one forward pass, across concurrent requests."
    )
    batch_wait_timeout_s: Annotated[float, Field(ge=0)] = Field(
        0.005, description="How long a batch waits to fill before it runs."
    )
    max_input_tokens: Annotated[int, Field(ge=1)] = Field(
        256, description="Inputs longer than this are refused (400), never silently cut."
    )
    num_replicas: Annotated[int, Field(ge=1)] = 1
    cpus_per_replica: Annotated[float, Field(gt=0)] = 0.5


class HostedTargetConfig(_Strict):
    provider: str = Field(description="Name of a provider in `providers`.")
    model: str | None = Field(None, description="The provider's model name; default: the provider's `models` map.")


class RouteConfig(_Strict):
    local_model: str | None = Field(
        None, description="The local model serving this route; default: the model of the route's name, if any."
    )
    ttft_target_s: Annotated[float, Field(gt=0)] = Field(
        2.0, description="Spill to a hosted target when the predicted local time to first token exceeds this."
    )
    hosted: list[HostedTargetConfig] = Field(default_factory=list, description="Hosted targets, in order of preference.")
    allow_hosted: bool = Field(True, description="False keeps this route's data in-house: never spill.")
    cache: RouteCacheConfig = RouteCacheConfig()


class FailoverConfig(_Strict):
    attempts_per_target: Annotated[int, Field(ge=1, le=10)] = 2
    deadline_s: Annotated[float, Field(gt=0)] = Field(30.0, description="All tries before the first token, together.")
    local_start_timeout_s: Annotated[float, Field(gt=0)] = Field(
        10.0,
        description="A local stream with a hosted target behind it fails over if no first chunk "
        "came in this long (e.g. its replica vanished and Serve holds it for the next one).",
    )
    breaker_consecutive_failures: Annotated[int, Field(ge=1)] = 5
    breaker_failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    breaker_window: Annotated[int, Field(ge=1)] = 20
    breaker_min_samples: Annotated[int, Field(ge=1)] = 10
    breaker_cooldown_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _timeout_inside_deadline(self) -> FailoverConfig:
        if self.local_start_timeout_s >= self.deadline_s:
            raise ValueError(
                f"local_start_timeout_s ({self.local_start_timeout_s:g}) must be below deadline_s ({self.deadline_s:g}), "
                "or a timed-out local request has no time left for its hosted target"
            )
        return self


class AuthConfig(_Strict):
    enabled: bool = Field(False, description="Require `Authorization: Bearer <key>`.")
    keys_env: str = Field(
        "SPILLOVER_API_KEYS",
        description="Environment variable holding comma-separated static keys, beside those `spillover keys create` makes.",
    )
    secret_env: str = Field("SPILLOVER_KEY_SECRET", description="Environment variable holding the keys' HMAC secret.")
    secret_file: str = Field(
        "~/.cache/spillover/key-secret", description="The HMAC secret when the variable is unset; made once (mode 0600)."
    )
    admin_key_env: str = Field("SPILLOVER_ADMIN_KEY", description="Environment variable holding the admin API's key.")
    refresh_s: Annotated[float, Field(gt=0, le=5)] = Field(
        1.0, description="How often each ingress replica reloads the keys: a revocation's longest delay."
    )


class StoresConfig(_Strict):
    sqlite_path: str = Field("~/.cache/spillover/spillover.db", description="Default store.")
    redis_url: str | None = None
    redis_prefix: str = Field("spillover:", description="Every Redis key spillover writes starts with this.")
    postgres_dsn: str | None = None
    spool_dir: str = Field(
        "~/.cache/spillover/ledger-spool",
        description="Where finished requests' ledger rows are fsync'd before they move to the database; "
        "ingress replicas on one machine share it, and each adopts the rows of a dead one.",
    )


class BudgetConfig(_Strict):
    scope: Literal["user", "team"]
    name: str
    daily_usd: Annotated[float, Field(ge=0)] | None = None
    monthly_usd: Annotated[float, Field(ge=0)] | None = None


class CostsConfig(_Strict):
    ledger: bool = Field(True, description="Record one ledger row per request.")
    price_table: str | None = Field(None, description="A price-table YAML; default: the built-in one (costbook/prices.yaml).")
    budgets: list[BudgetConfig] = Field(
        default_factory=list, description="Per user or team, per UTC day and month; a key's own budget comes with the key."
    )
    local_usd_per_mtok_ceiling: Annotated[float, Field(ge=0)] = Field(
        1.0, description="What a budget reserves, and charges until the replica time is shared out, per million tokens of local work."
    )
    local_interval_s: Annotated[int, Field(ge=5, multiple_of=5)] = Field(
        60, description="Local work is priced per interval: the replicas' time in it, shared out by tokens."
    )


class AutoscalerConfig(_Strict):
    """``spillover autoscale``: the one controller of the local models' replica counts."""

    prometheus_url: str = Field("http://127.0.0.1:9090", description="Prometheus that scrapes the ingress.")
    tick_s: Annotated[float, Field(gt=0)] = 15.0
    query_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    rate_window: str = Field("1m", description="PromQL range for rates; at least 4 scrape intervals.")
    dry_run: bool = Field(False, description="Decide and log, never scale.")
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(9105, description="Its own /metrics; 0 turns it off.")
    rayservice: str | None = Field(
        None, description="In a cluster: the RayService whose serveConfigV2 gets the counts (autoscaler/rayservice.py); "
        "unset: Serve's controller directly.")
    rayservice_namespace: str | None = Field(None, description="The RayService's namespace; default: the autoscaler pod's own.")


class SpilloverConfig(_Strict):
    server: ServerConfig = ServerConfig()
    ingress: IngressConfig = IngressConfig()
    auth: AuthConfig = AuthConfig()
    models: list[ModelConfig] = Field(min_length=1)
    embeddings: list[EmbeddingModelConfig] = Field(default_factory=list)
    stores: StoresConfig = StoresConfig()
    costs: CostsConfig = CostsConfig()
    providers: list[ProviderConfig] = Field(default_factory=list)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    failover: FailoverConfig = FailoverConfig()
    autoscaler: AutoscalerConfig = AutoscalerConfig()
    cache: CacheConfig = CacheConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> SpilloverConfig:
        names = [m.name for m in self.models] + [e.name for e in self.embeddings]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        providers = {p.name for p in self.providers}
        models = {m.name for m in self.models}
        for route_name, route in self.routes.items():
            missing = [t.provider for t in route.hosted if t.provider not in providers]
            if missing:
                raise ValueError(f"route {route_name!r} names unknown provider(s) {missing}; known: {sorted(providers)}")
            if route.local_model is not None and route.local_model not in models:
                raise ValueError(f"route {route_name!r} names unknown local_model {route.local_model!r}")
        return self



def default_config_dict() -> dict[str, Any]:
    """The embedded default: SmolLM2-135M-Instruct on one CPU replica, all-MiniLM-L6-v2 embeddings."""
    return {
        "models": [{"name": DEFAULT_MODEL_NAME, "source": f"builtin:{DEFAULT_MODEL_NAME}", "tool_call_parser": "hermes"}],
        "embeddings": [{"name": DEFAULT_EMBEDDING_MODEL_NAME, "source": f"builtin:{DEFAULT_EMBEDDING_MODEL_NAME}"}],
    }


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> SpilloverConfig:
    """Read ``path`` (or the embedded default), apply environment overrides, validate."""
    env = dict(os.environ) if env is None else env
    if path is None:
        raw: Any = default_config_dict()
        origin = "embedded default"
    else:
        origin = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{origin}: top level must be a mapping")
    return parse_config(apply_env_overrides(raw, env), origin=origin)


def parse_config(raw: dict[str, Any], origin: str = "config") -> SpilloverConfig:
    """Validate a config mapping; the error names the first bad field."""
    try:
        return SpilloverConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{origin}: {field}: {first['msg']}{more}") from None


def apply_env_overrides(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with every ``SPILLOVER__A__B=v`` applied as ``a.b = v``."""
    merged: dict[str, Any] = yaml.safe_load(yaml.safe_dump(raw))  # deep copy, plain types
    for key in sorted(k for k in env if k.startswith(ENV_PREFIX)):
        path = [p.lower() for p in key.removeprefix(ENV_PREFIX).split("__") if p]
        if path:
            _set_path(merged, path, yaml.safe_load(env[key]), key)
    return merged


def _set_path(node: Any, path: list[str], value: Any, key: str) -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{key}: no list item {part!r} to override")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{key}: {'.'.join(path[:i])} is not a section")
