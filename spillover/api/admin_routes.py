"""The admin surface: what each subsystem exposes to the admin key (or, for budgets, to any key
about itself), mounted together. Each router lives with what it administers."""

from __future__ import annotations

import os

from fastapi import APIRouter

from access.admin_api import admin_router
from costbook.budget_api import budget_router
from costlevers.batch.api import identify_with
from costlevers.cache.admin import cache_admin_router
from experiments.admin_api import experiments_router
from experiments.feedback import feedback_router
from spillover.assembly import IngressParts

__all__ = ["admin_routes"]


def admin_routes(ingress: IngressParts) -> APIRouter:
    """``/admin/keys``, ``/v1/budget`` and ``/v1/feedback`` with keys and costs on; ``/admin/experiments`` with
    experiments; ``/admin/cache/purge`` always."""
    router = APIRouter()
    access, costbook = ingress.access, ingress.costbook
    admin_key = access.admin_key if access is not None else os.environ.get(ingress.config.auth.admin_key_env) or None
    if access is not None and costbook is not None:
        router.include_router(admin_router(access.keys.store, admin_key, reload=access.keys.refresh))
        router.include_router(budget_router(ingress.authenticate, costbook.admit, costbook.counters))
    router.include_router(cache_admin_router(ingress.cache, admin_key))
    if ingress.feedback is not None:
        router.include_router(feedback_router(ingress.feedback, identify_with(ingress.authenticate)))
    if ingress.experiments is not None:
        router.include_router(experiments_router(ingress.config.experiments, ingress.experiments, ingress.stores.database().engine,
                                                 admin_key))
    return router
