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
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from access.config import AuthConfig
from autoscaler.config import AutoscalerConfig
from contracts.errors import ConfigError
from costbook.config import CostsConfig
from costlevers.batch.config import BatchConfig
from costlevers.cache.config import CacheConfig, RouteCacheConfig
from costlevers.compression.config import CompressionConfig
from costlevers.routing.config import RoutingConfig
from experiments.config import ExperimentConfig
from fallback.config import FailoverConfig
from fallback.providers.config import ProviderConfig
from monitor.config import MonitorConfig
from serving.config import EmbeddingModelConfig, IngressConfig, ModelConfig, ServerConfig
from stores.config import StoresConfig

__all__ = [
    "DEFAULT_EMBEDDING_MODEL_NAME",
    "DEFAULT_MODEL_NAME",
    "ENV_PREFIX",
    "HostedTargetConfig",
    "MaxTokensConfig",
    "RouteConfig",
    "SpilloverConfig",
    "apply_env_overrides",
    "default_config_dict",
    "load_config",
    "parse_config",
]

ENV_PREFIX = "SPILLOVER__"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL_NAME = "all-minilm-l6-v2"
#: The embedded default's output limit for a request that sets none.
DEFAULT_MAX_TOKENS_ON_CPU = 256


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostedTargetConfig(_Strict):
    provider: str = Field(description="Name of a provider in `providers`.")
    model: str | None = Field(None, description="The provider's model name; default: the provider's `models` map.")


class MaxTokensConfig(_Strict):
    """Why: a request without ``max_tokens`` generates to the context limit (minutes on a CPU
    replica, and a budget reservation sized for the whole context)."""

    default: Annotated[int, Field(ge=1)] = Field(
        1024, description="Output tokens allowed to a request that sets neither `max_tokens` nor `max_completion_tokens`."
    )
    max: Annotated[int, Field(ge=1)] | None = Field(
        None, description="A request asking for more gets 400 (param `max_tokens`); unset: the model's context bounds it."
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> MaxTokensConfig:
        if self.max is not None and self.default > self.max:
            raise ValueError(f"default ({self.default}) is above max ({self.max})")
        return self


class RouteConfig(_Strict):
    #: Each lever's settings with the lever off: an experiment's holdout variant (with routing
    #: off, the route's strongest candidate serves). A lever added here adds its off value here.
    LEVERS_OFF: ClassVar[dict[str, Any]] = {"cache": {"enabled": False, "semantic": False}, "compression": None}

    aliases: list[str] = Field(
        default_factory=list, description="Other names clients may send for this route (e.g. `gpt-4o`); listed by /v1/models."
    )
    max_tokens: MaxTokensConfig = MaxTokensConfig()
    local_model: str | None = Field(
        None, description="The local model serving this route; default: the model of the route's name, if any."
    )
    ttft_target_s: Annotated[float, Field(gt=0)] = Field(
        2.0, description="Spill to a hosted target when the predicted local time to first token exceeds this."
    )
    hosted: list[HostedTargetConfig] = Field(default_factory=list, description="Hosted targets, in order of preference.")
    allow_hosted: bool = Field(True, description="False keeps this route's data in-house: never spill.")
    local_start_timeout_s: Annotated[float, Field(gt=0)] | None = Field(
        None, description="This route's own failover.local_start_timeout_s: how long a kept local stream may wait for "
        "its first chunk before its hosted targets take it (default: the failover block's)."
    )
    cache: RouteCacheConfig = RouteCacheConfig()
    routing: RoutingConfig | None = Field(
        None, description="Make this a routed name (e.g. `auto`): each request gets one of `candidates` (other routes), chosen by "
        "a router or a cascade; it then spills over as that route does."
    )
    compression: CompressionConfig | None = Field(
        None, description="Cut long prompts on this route (question-aware, extractive) to a ratio or a token budget; off without it."
    )


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
    batch: BatchConfig = BatchConfig()
    monitor: MonitorConfig = MonitorConfig()
    experiments: dict[str, ExperimentConfig] = Field(
        default_factory=dict, description="A/B experiments: a route's requests split by user between variants of its settings.")

    @model_validator(mode="after")
    def _unique_names(self) -> SpilloverConfig:
        names = [m.name for m in self.models] + [e.name for e in self.embeddings]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        self._check_aliases(set(names) | set(self.routes))
        providers = {p.name for p in self.providers}
        models = {m.name for m in self.models}
        hosted_batch = self.batch.hosted
        if hosted_batch is not None and hosted_batch.provider not in providers:
            raise ValueError(f"batch.hosted.provider {hosted_batch.provider!r} is not an entry of `providers`")
        for route_name, route in self.routes.items():
            if route.routing is not None:
                self._check_routing(route_name, route)
            missing = [t.provider for t in route.hosted if t.provider not in providers]
            if missing:
                raise ValueError(f"route {route_name!r} names unknown provider(s) {missing}; known: {sorted(providers)}")
            if route.local_model is not None and route.local_model not in models:
                raise ValueError(f"route {route_name!r} names unknown local_model {route.local_model!r}")
            if route.local_start_timeout_s is not None and route.local_start_timeout_s >= self.failover.deadline_s:
                raise ValueError(f"route {route_name!r}: local_start_timeout_s ({route.local_start_timeout_s:g}) must be below "
                                 f"failover.deadline_s ({self.failover.deadline_s:g}), or a timed-out request has no time left")
        self._check_experiments()
        return self

    def _check_experiments(self) -> None:
        known = {m.name for m in self.models} | set(self.routes)
        tested: dict[str, str] = {}
        for name, experiment in self.experiments.items():
            if not name or len(name) > 64 or "~" in name or "." in name:
                raise ValueError(f"experiment {name!r}: a name of 1 to 64 characters without '~' or '.'")
            if experiment.route not in known:
                raise ValueError(f"experiment {name!r}: route {experiment.route!r} is not a model or route; known: {sorted(known)}")
            if experiment.route in tested:
                raise ValueError(f"experiments {tested[experiment.route]!r} and {name!r} both split route {experiment.route!r}")
            tested[experiment.route] = name
            for variant_name, variant in experiment.variants.items():
                if variant.route is not None and variant.route not in known:
                    raise ValueError(f"experiment {name!r}: variant {variant_name!r} names unknown route {variant.route!r}")

    def _check_aliases(self, public: set[str]) -> None:
        owners = [(a, m.name) for m in [*self.models, *self.embeddings] for a in m.aliases]
        owners += [(a, name) for name, route in self.routes.items() for a in route.aliases]
        seen: dict[str, str] = {}
        for alias, owner in owners:
            if alias in public:
                raise ValueError(f"alias {alias!r} of {owner!r} is already a model or route name")
            if alias in seen:
                raise ValueError(f"alias {alias!r} is given to both {seen[alias]!r} and {owner!r}")
            seen[alias] = owner

    def _check_routing(self, name: str, route: RouteConfig) -> None:
        assert route.routing is not None
        known = {m.name for m in self.models} | set(self.routes)
        if len(set(route.routing.candidates)) < len(route.routing.candidates):
            raise ValueError(f"route {name!r}: routing.candidates repeats a route")
        for candidate in route.routing.candidates:
            if candidate not in known:
                raise ValueError(f"route {name!r}: routing.candidates names unknown route {candidate!r}; known: {sorted(known)}")
            if candidate == name or (candidate in self.routes and self.routes[candidate].routing is not None):
                raise ValueError(f"route {name!r}: routing.candidates {candidate!r} is itself routed; candidates must be plain routes")
        if route.local_model is not None or route.hosted or route.compression is not None:
            raise ValueError(f"route {name!r}: a routed route serves through its candidates; it takes no local_model, hosted or "
                             "compression (give the candidates theirs)")
        if route.routing.router is None and route.routing.cascade is None:
            raise ValueError(f"route {name!r}: routing needs a router, a cascade or both")
        if route.routing.router is not None and not (route.routing.router.embedding_model or self.embeddings):
            raise ValueError(f"route {name!r}: routing.router needs an `embeddings` model")


def default_config_dict() -> dict[str, Any]:
    """The embedded default: SmolLM2-135M-Instruct on one CPU replica, all-MiniLM-L6-v2 embeddings.

    A request that sets no output limit gets :data:`DEFAULT_MAX_TOKENS_ON_CPU` (one CPU replica
    writes ~15 tokens a second; to the context limit would take minutes)."""
    return {
        "models": [{"name": DEFAULT_MODEL_NAME, "source": f"builtin:{DEFAULT_MODEL_NAME}", "tool_call_parser": "hermes"}],
        "embeddings": [{"name": DEFAULT_EMBEDDING_MODEL_NAME, "source": f"builtin:{DEFAULT_EMBEDDING_MODEL_NAME}"}],
        "routes": {DEFAULT_MODEL_NAME: {"max_tokens": {"default": DEFAULT_MAX_TOKENS_ON_CPU}}},
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
