"""spillover's ingress app alone under uvicorn, for the costs benchmark (bench/costs.py).

No Ray: the app is built with :func:`spillover.app.create_app` over :class:`NoLocalEngines`, and
the benchmark's config routes its model to a hosted provider only (a route with no local model
always spills, reason ``no_ready_replica``), so no request ever asks for a local engine. With
``--stages on`` the app is assembled with keys and costs (auth, rate limits, budgets, ledger over
the configured Redis and PostgreSQL), as the ingress deployment assembles it; with ``off``, none. Logging is configured as
``spillover serve`` configures it: one JSON access line per request.

    python bench/costs_ingress.py CONFIG PORT on|off
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from contracts.engine_state import EngineState, ReplicaInterval  # noqa: E402
from contracts.errors import NoReplicaError  # noqa: E402
from contracts.upstream import UpstreamCall  # noqa: E402


class NoLocalEngines:
    """The smallest honest :class:`~contracts.local_engines.LocalEngines`: there are none.
    Every route of the benchmark is hosted-only, so dispatch never calls ``generate``."""

    def models(self) -> list[str]:
        return []

    def embedding_models(self) -> list[str]:
        return []

    def state(self, model: str) -> EngineState:
        return EngineState(model=model)

    def all_states(self) -> dict[str, EngineState]:
        return {}

    async def generate(self, call: UpstreamCall) -> AsyncIterator[Any]:
        raise NoReplicaError(f"No local engine for '{call.model}' in this benchmark.")
        yield  # pragma: no cover  # an async generator, as the protocol wants

    async def embed(self, model: str, body: dict[str, Any]) -> AsyncIterator[Any]:
        raise NoReplicaError(f"No local embedding model '{model}' in this benchmark.")
        yield  # pragma: no cover

    async def replica_time(self, after: float, before: float) -> list[ReplicaInterval]:
        return []  # no local replicas, no local cost to share out

    async def aclose(self) -> None:
        pass


def build(config_path: str, stages_on: bool) -> Any:
    """The app exactly as the ingress deployment builds it, over no local engines."""
    from spillover.app import create_app
    from spillover.config import load_config

    return create_app(load_config(config_path), NoLocalEngines(), keys_and_costs=stages_on)


def main() -> None:
    import uvicorn

    from serving.logs import configure_logging

    config_path, port, stages = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    configure_logging()
    app = build(config_path, stages == "on")
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, loop="uvloop", http="httptools", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
