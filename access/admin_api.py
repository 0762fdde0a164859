"""The admin API: create, list and revoke API keys; every call needs the admin key.

``POST /admin/keys`` returns the new key once; listings never show a key or its digest.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from access.keys import KeyRecord, KeyStore
from contracts.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from webio.bodies import parse_body, read_json_body

__all__ = ["MAX_ADMIN_BODY_BYTES", "admin_router", "require_admin"]

MAX_ADMIN_BODY_BYTES = 16 * 1024


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: Annotated[str, Field(min_length=1, max_length=128)]
    team: Annotated[str, Field(min_length=1, max_length=128)] = "default"
    budget_usd: Annotated[float, Field(ge=0)] | None = None
    rpm: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    tpm: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


def key_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id, "user": record.user, "team": record.team,
        "budget_usd": None if record.budget_micro_usd is None else record.budget_micro_usd / 1e6,
        "rpm": record.rpm, "tpm": record.tpm, "created_at": record.created_at.isoformat(),
        "revoked_at": None if record.revoked_at is None else record.revoked_at.isoformat(),
    }


def require_admin(request: Request, admin_key: str | None) -> None:
    """401 without a bearer key, 403 unless it is the admin key (compared in constant time)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationError("The admin API needs the admin key as 'Authorization: Bearer <key>'.", code="missing_api_key")
    if admin_key is None:
        raise PermissionDeniedError("The admin API is off: no admin key is configured (auth.admin_key_env).")
    if not hmac.compare_digest(key.strip().encode(), admin_key.encode()):
        raise PermissionDeniedError("This key may not use the admin API.", code="not_admin")


def admin_router(store: KeyStore, admin_key: str | None, *, reload: Callable[[], Awaitable[None]] | None = None) -> APIRouter:
    """``reload``: this replica's key cache, reloaded after a revocation so the revoked key stops
    here at once (other replicas within their refresh period)."""
    router = APIRouter(prefix="/admin")

    @router.post("/keys", status_code=201)
    async def create_key(request: Request) -> JSONResponse:
        require_admin(request, admin_key)
        body: CreateKey = parse_body(CreateKey, await read_json_body(request, MAX_ADMIN_BODY_BYTES))
        budget = None if body.budget_usd is None else round(body.budget_usd * 1_000_000)
        key, record = await asyncio.to_thread(store.create, body.user, body.team, budget_micro_usd=budget, rpm=body.rpm, tpm=body.tpm)
        return JSONResponse({**key_json(record), "key": key}, status_code=201)

    @router.get("/keys")
    async def list_keys(request: Request) -> dict[str, Any]:
        require_admin(request, admin_key)
        return {"object": "list", "data": [key_json(r) for r in await asyncio.to_thread(store.records)]}

    @router.delete("/keys/{key_id}")
    async def revoke_key(key_id: str, request: Request) -> dict[str, Any]:
        require_admin(request, admin_key)
        if not await asyncio.to_thread(store.revoke, key_id):
            raise NotFoundError(f"No active key '{key_id}'.", param="key_id", code="key_not_found")
        if reload is not None:
            await reload()
        return {"key_id": key_id, "revoked": True}

    return router
