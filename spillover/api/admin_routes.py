"""The admin surface: what each subsystem exposes to the admin key (or, for budgets, to any key
about itself), mounted together. Each router lives with what it administers."""

from __future__ import annotations

import os

from fastapi import APIRouter

from access.admin_api import admin_router
from costbook.budget_api import budget_router
from costlevers.cache.admin import cache_admin_router
from spillover.assembly import IngressParts

__all__ = ["admin_routes"]


def admin_routes(ingress: IngressParts) -> APIRouter:
    """``/admin/keys`` and ``/v1/budget`` with keys and costs on; ``/admin/cache/purge`` always."""
    router = APIRouter()
    access, costbook = ingress.access, ingress.costbook
    admin_key = access.admin_key if access is not None else os.environ.get(ingress.config.auth.admin_key_env) or None
    if access is not None and costbook is not None:
        router.include_router(admin_router(access.keys.store, admin_key, reload=access.keys.refresh))
        router.include_router(budget_router(ingress.authenticate, costbook.admit, costbook.counters))
    router.include_router(cache_admin_router(ingress.cache, admin_key))
    return router
