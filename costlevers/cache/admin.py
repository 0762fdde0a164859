"""``POST /admin/cache/purge``: remove cache entries by route (model), model version, prompt
version or scope (a team, a key id, or ``*`` for global entries); the admin key only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from access.admin_api import MAX_ADMIN_BODY_BYTES, require_admin
from contracts.stores import PurgeFilter
from costlevers.cache.lever import CacheLever
from webio.bodies import parse_body, read_json_body

__all__ = ["cache_admin_router"]

_Part = Annotated[str, Field(min_length=1, max_length=256)] | None


class Purge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: _Part = None
    model_version: _Part = None
    prompt_version: _Part = None
    scope: _Part = None


def cache_admin_router(cache: CacheLever, admin_key: str | None) -> APIRouter:
    router = APIRouter(prefix="/admin/cache")

    @router.post("/purge")
    async def purge(request: Request) -> dict[str, Any]:
        require_admin(request, admin_key)
        body: Purge = parse_body(Purge, await read_json_body(request, MAX_ADMIN_BODY_BYTES))
        purged = await cache.purge(PurgeFilter(body.model, body.model_version, body.prompt_version, body.scope))
        return {"object": "cache.purge", "purged": purged}

    return router
