"""``/admin/experiments``: list the configured experiments, start and stop them, read a report.

Start and stop take effect on this replica at once and on the others within their refresh
period (experiments.state); the report is the same as ``spillover experiments report``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from access.admin_api import require_admin
from contracts.errors import NotFoundError
from experiments.config import ExperimentConfig
from experiments.report import experiment_report, outcomes
from experiments.state import ExperimentSwitches

__all__ = ["experiments_router"]


def experiments_router(experiments: Mapping[str, ExperimentConfig], switches: ExperimentSwitches, engine: sa.Engine,
                       admin_key: str | None) -> APIRouter:
    router = APIRouter(prefix="/admin/experiments")

    def known(name: str) -> ExperimentConfig:
        if name not in experiments:
            raise NotFoundError(f"No experiment '{name}' in the config.", param="name", code="experiment_not_found")
        return experiments[name]

    def summary(name: str) -> dict[str, Any]:
        config = experiments[name]
        return {"name": name, "route": config.route, "running": switches.running(name), "control": config.control_variant,
                "variants": {v: c.model_dump(mode="json") for v, c in config.variants.items()}}

    @router.get("")
    async def list_experiments(request: Request) -> dict[str, Any]:
        require_admin(request, admin_key)
        return {"object": "list", "data": [summary(name) for name in experiments]}

    @router.post("/{name}/{verb}")
    async def switch(name: str, verb: str, request: Request) -> dict[str, Any]:
        """``start`` or ``stop`` splitting ``name``'s traffic."""
        require_admin(request, admin_key)
        known(name)
        if verb not in ("start", "stop"):
            raise NotFoundError(f"No action '{verb}' on an experiment (start or stop).", code="not_found")
        await asyncio.to_thread(switches.set, name, verb == "start")
        return summary(name)

    @router.get("/{name}/report")
    async def report(name: str, request: Request) -> dict[str, Any]:
        require_admin(request, admin_key)
        config = known(name)

        def read() -> dict[str, Any]:
            with engine.connect() as connection:
                return experiment_report(name, config, outcomes(connection, name))

        return await asyncio.to_thread(read)

    return router
