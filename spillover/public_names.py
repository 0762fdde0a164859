"""The names a client may send in ``model``, and each generation route's output-token limits.

Why one place: apps written for hosted APIs send ``gpt-4o-mini`` or ``text-embedding-3-small``;
the entry that serves them has its own name. A name is resolved once, where a request (or a batch
line) enters, so routing, the cache, dispatch, pricing and the ledger all see the entry's own name.
A request that sets no output limit gets its route's default here too: without one, a model
generates to its context limit (minutes on a CPU replica) and admission reserves budget for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.context import Api
from contracts.errors import InvalidRequestError, NotFoundError
from spillover.config import MaxTokensConfig, RouteConfig, SpilloverConfig

#: Marks an experiment variant's route (spillover.experiment_routes): never a public name.
VARIANT_MARK = "~"

__all__ = ["PublicNames"]

_OUTPUT_LIMIT_FIELDS = {Api.CHAT: ("max_completion_tokens", "max_tokens"), Api.COMPLETIONS: ("max_tokens",)}


@dataclass(frozen=True)
class PublicNames:
    #: Every name a client may send -> the name of the model or route that serves it.
    entries: Mapping[str, str]
    #: Per generation route (every local model and every ``routes`` entry): its output limits.
    limits: Mapping[str, MaxTokensConfig] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: SpilloverConfig) -> PublicNames:
        entries = {name: name for name in [*(m.name for m in config.models), *config.routes, *(e.name for e in config.embeddings)]}
        for model in [*config.models, *config.embeddings]:
            entries.update(dict.fromkeys(model.aliases, model.name))
        for name, route in config.routes.items():
            entries.update(dict.fromkeys(route.aliases, name))
        limits = {m.name: config.routes.get(m.name, RouteConfig()).max_tokens for m in config.models}
        limits.update({name: route.max_tokens for name, route in config.routes.items()})
        return cls(entries, limits)

    def listed(self) -> list[str]:
        """What ``/v1/models`` lists: every entry and every alias."""
        return list(self.entries)

    def resolve(self, name: str) -> str:
        """The serving entry's name (an unknown name stays as it is: dispatch answers 404)."""
        return self.entries.get(name, name)

    def default_max_tokens(self, name: str) -> int:
        """The output limit a request to ``name`` gets when it sets none."""
        return self.limits.get(self.resolve(name), MaxTokensConfig()).default

    def admit(self, api: Api, body: dict[str, Any]) -> dict[str, Any]:
        """The body as its entry serves it: the entry's own name in ``model``, and an output
        limit (the route's default where the request set none; 400 above the route's maximum).
        Fields of the wrong type are left for the body's own validation to name."""
        model = body.get("model")
        if not isinstance(model, str):
            return body
        name = self.resolve(model)
        if name not in self.entries and VARIANT_MARK in name:  # an experiment variant's own route
            raise NotFoundError(f"The model '{model}' does not exist.", param="model", code="model_not_found")
        out = body if name == model else {**body, "model": name}
        limits = self.limits.get(name)
        if limits is None or api not in _OUTPUT_LIMIT_FIELDS:
            return out
        asked = [(f, body[f]) for f in _OUTPUT_LIMIT_FIELDS[api] if body.get(f) is not None]
        if not asked:
            return {**out, "max_tokens": limits.default}
        for param, value in asked:
            if limits.max is not None and isinstance(value, int) and value > limits.max:
                raise InvalidRequestError(f"{param} is {value}; the model '{model}' allows at most {limits.max}.", param=param,
                                          code="max_tokens_too_large")
        return out
