"""The ingress: spillover's OpenAI-compatible HTTP app, built by a factory.

The same app runs as a Ray Serve ingress deployment (:mod:`spillover.application`) and under
plain uvicorn in tests and benchmarks; it is handed its engines and never builds them. What it
runs is assembled in :mod:`spillover.assembly`; its surfaces are :mod:`spillover.api`'s routers:
OpenAI, operations and admin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contracts.local_engines import LocalEngines
from fallback.providers.interface import Provider
from monitor.dashboard_api import dashboard_router
from spillover.api.admin_routes import admin_routes
from spillover.api.error_envelope import install_error_handlers
from spillover.api.openai_routes import openai_router
from spillover.api.operations_routes import operations_router
from spillover.assembly import assemble
from spillover.config import SpilloverConfig
from spillover.startup_heap import freeze_startup_heap

__all__ = ["create_app"]


def create_app(config: SpilloverConfig, engines: LocalEngines, *, providers: Mapping[str, Provider] | None = None,
               keys_and_costs: bool = False, echo_request_id: bool = True) -> FastAPI:
    """Build the ingress app over ``engines``.

    ``keys_and_costs``: keys from the database, rate limits, budgets and the ledger (what a
    deployment runs); off, only static keys and no ledger. ``echo_request_id``: add
    ``x-request-id`` to responses; off behind Serve's proxy, which already echoes the same id.
    """
    ingress = assemble(config, engines, providers=providers, keys_and_costs=keys_and_costs)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ingress.start()
        # What start-up built lives as long as the process: out of the collector's full passes,
        # whose walk over it stalled every request in flight (spillover.startup_heap).
        freeze_startup_heap()
        yield
        await ingress.aclose()

    app = FastAPI(title="spillover", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.ingress = ingress
    install_error_handlers(app, echo_request_id)
    app.include_router(openai_router(ingress, echo_request_id=echo_request_id))
    app.include_router(operations_router(ingress))
    app.include_router(admin_routes(ingress))
    if ingress.batch is not None:
        app.include_router(ingress.batch.router)
    if ingress.dashboard is not None:
        app.include_router(dashboard_router(ingress.dashboard))
    return app
