"""OpenAI's Files and Batches APIs as the official SDK calls them: ``/v1/files`` (multipart
upload with ``purpose=batch``, list, get, content, delete) and ``/v1/batches`` (create, get,
list, cancel). Every file and batch belongs to the key that made it; any other key gets 404.

A batch is validated whole when it is created (:mod:`costlevers.batch.validate`): it is
``in_progress`` at once, or ``failed`` with OpenAI's ``errors`` list naming the lines. A valid
batch's worst case is then held in its owner's budgets (:mod:`costlevers.batch.budget`); one that
does not fit is refused (429 ``insufficient_quota``) and never created.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from fastapi import APIRouter, Request, Response

from contracts.context import Api, Principal, RequestContext, new_request_id
from contracts.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from costlevers.batch.budget import BudgetHold
from costlevers.batch.config import BatchConfig
from costlevers.batch.files import FileBytes, new_id
from costlevers.batch.store import TERMINAL, BatchStore
from costlevers.batch.validate import ENDPOINTS, parse_input

__all__ = ["Identify", "batch_object", "batch_router", "file_object", "identify_with"]

WINDOW_S = {"24h": 24 * 3600}
PURPOSES = ("batch", "batch_output", "user_data")

#: Who is asking (the authenticate stage, run on the request's headers).
Identify = Callable[[dict[str, str]], Awaitable[Principal]]


def file_object(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": row["created_at"], "filename": row["filename"],
            "purpose": row["purpose"], "status": "processed"}  # status_details: deprecated, optional, a string when present


def batch_object(row: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    stamps = ("created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
              "cancelled_at")
    return {
        "id": row["id"], "object": "batch", "endpoint": row["endpoint"], "errors": json.loads(row["errors"]) if row["errors"] else None,
        "input_file_id": row["input_file_id"], "completion_window": row["completion_window"], "status": row["status"],
        "output_file_id": row["output_file_id"], "error_file_id": row["error_file_id"], **{s: row[s] for s in stamps},
        "request_counts": {"total": row["total"], "completed": counts["completed"], "failed": counts["failed"]},
        "metadata": json.loads(row["batch_metadata"]) if row["batch_metadata"] else None,
    }


def _page(items: list[dict[str, Any]], limit: int, shape: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    data = [shape(r) for r in items[:limit]]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
            "has_more": len(items) > limit}


def _limit(value: str | None, default: int = 20) -> int:
    try:
        limit = int(value) if value is not None else default
    except ValueError:
        raise InvalidRequestError("limit must be an integer.", param="limit") from None
    if not 1 <= limit <= 10_000:
        raise InvalidRequestError("limit must be between 1 and 10000.", param="limit")
    return limit


def identify_with(authenticate: Any) -> Identify:
    """The authenticate stage as a function of headers (the files and batches calls are not pipeline requests)."""
    async def identify(headers: dict[str, str]) -> Principal:
        ctx = RequestContext(new_request_id(), Api.CHAT, "", {}, False, headers)
        await authenticate.process(ctx)
        return ctx.principal

    return identify


def batch_router(store: BatchStore, file_bytes: FileBytes, config: BatchConfig, *, identify: Identify, models: Callable[[], Collection[str]],
                 budget: BudgetHold | None = None, clock: Callable[[], float] = time.time) -> APIRouter:
    """``models``: the model names a batch line may name (those served locally); ``budget``:
    where a batch's worst case is held (none: budgets see its lines only)."""
    router = APIRouter()

    async def owner(request: Request) -> Principal:
        return await identify({k.lower(): v for k, v in request.headers.items()})

    async def owned_file(file_id: str, principal: Principal) -> dict[str, Any]:
        row = await asyncio.to_thread(store.file, file_id, principal.key_id)
        if row is None:
            raise NotFoundError(f"No such File object: {file_id}", param="file_id")
        return row

    async def owned_batch(batch_id: str, principal: Principal) -> dict[str, Any]:
        row = await asyncio.to_thread(store.batch, batch_id, principal.key_id)
        if row is None:
            raise NotFoundError(f"No batch found with id '{batch_id}'.", param="batch_id")
        return row

    async def shaped(row: dict[str, Any]) -> dict[str, Any]:
        return batch_object(row, await asyncio.to_thread(store.counts, row["id"]))

    @router.post("/v1/files")
    async def upload(request: Request) -> dict[str, Any]:
        principal = await owner(request)
        declared = int(request.headers.get("content-length") or 0)
        if declared > config.max_file_bytes + 64 * 1024:
            raise PayloadTooLargeError(f"The file is larger than {config.max_file_bytes} bytes.", param="file")
        form = await request.form(max_files=1, max_fields=8, max_part_size=config.max_file_bytes + 1)
        upload, purpose = form.get("file"), form.get("purpose")
        if purpose not in PURPOSES:
            raise InvalidRequestError(f"purpose must be one of {', '.join(PURPOSES)}.", param="purpose")
        if upload is None or isinstance(upload, str):
            raise InvalidRequestError("Send the file as a multipart field named 'file'.", param="file")
        data = await upload.read(config.max_file_bytes + 1)
        if len(data) > config.max_file_bytes:
            raise PayloadTooLargeError(f"The file is larger than {config.max_file_bytes} bytes.", param="file")
        row = {"id": new_id("file"), "key_id": principal.key_id, "purpose": purpose, "filename": (upload.filename or "upload.jsonl")[:256],
               "bytes": len(data), "created_at": int(clock())}
        await asyncio.to_thread(file_bytes.write, row["id"], data)
        await asyncio.to_thread(store.add_file, row)
        return file_object(row)

    @router.get("/v1/files")
    async def list_files(request: Request) -> dict[str, Any]:
        principal = await owner(request)
        limit = _limit(request.query_params.get("limit"), 10_000)
        rows = await asyncio.to_thread(store.files_of, principal.key_id, after=request.query_params.get("after"), limit=limit,
                                       purpose=request.query_params.get("purpose"))
        return _page(rows, limit, file_object)

    @router.get("/v1/files/{file_id}")
    async def get_file(file_id: str, request: Request) -> dict[str, Any]:
        return file_object(await owned_file(file_id, await owner(request)))

    @router.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str, request: Request) -> Response:
        row = await owned_file(file_id, await owner(request))
        return Response(await asyncio.to_thread(file_bytes.read, row["id"]), media_type="application/octet-stream")

    @router.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str, request: Request) -> dict[str, Any]:
        row = await owned_file(file_id, await owner(request))
        await asyncio.to_thread(store.delete_file, row["id"])
        await asyncio.to_thread(file_bytes.delete, row["id"])
        return {"id": row["id"], "object": "file", "deleted": True}

    @router.post("/v1/batches")
    async def create(request: Request) -> dict[str, Any]:
        principal = await owner(request)
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise InvalidRequestError("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidRequestError("The body must be a JSON object.")
        endpoint, window, metadata = body.get("endpoint"), body.get("completion_window"), body.get("metadata")
        if endpoint not in ENDPOINTS:
            raise InvalidRequestError(f"endpoint must be one of {', '.join(ENDPOINTS)}.", param="endpoint")
        if window not in WINDOW_S:
            raise InvalidRequestError("completion_window must be '24h'.", param="completion_window")
        if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
            raise InvalidRequestError("metadata must map strings to strings.", param="metadata")
        source = await owned_file(str(body.get("input_file_id")), principal)
        if source["purpose"] != "batch":
            raise InvalidRequestError("The input file's purpose must be 'batch'.", param="input_file_id")
        data = await asyncio.to_thread(file_bytes.read, source["id"])
        lines, errors = parse_input(data, endpoint=endpoint, models=models(), max_lines=config.max_lines)
        now = int(clock())
        reserved: list[int] = []
        if budget is not None and not errors:
            reserved = await budget.worst_case(principal, endpoint, [x.body for x in lines])
            await budget.hold(principal, sum(reserved), now)
        row = {"id": new_id("batch"), "key_id": principal.key_id, "user_name": principal.user, "team": principal.team,
               "feature": principal.feature, "endpoint": endpoint, "input_file_id": source["id"], "completion_window": window,
               "created_at": now, "expires_at": now + WINDOW_S[window], "batch_metadata": json.dumps(metadata) if metadata else None,
               "total": 0 if errors else len(lines)}
        if errors:
            row |= {"status": "failed", "failed_at": now,
                    "errors": json.dumps({"object": "list", "data": [e.to_openai() for e in errors]})}
            await asyncio.to_thread(store.create_batch, row, [])
        else:
            row |= {"status": "in_progress", "in_progress_at": now}
            try:
                await asyncio.to_thread(store.create_batch, row, [(x.line, x.custom_id, x.body) for x in lines], reserved)
            except BaseException:
                if budget is not None:
                    await budget.release(principal, sum(reserved), now)
                raise
        return await shaped(await asyncio.to_thread(store.batch, row["id"]))

    @router.get("/v1/batches")
    async def list_batches(request: Request) -> dict[str, Any]:
        principal = await owner(request)
        limit = _limit(request.query_params.get("limit"))
        rows = await asyncio.to_thread(store.batches_of, principal.key_id, after=request.query_params.get("after"), limit=limit)
        counts = [await asyncio.to_thread(store.counts, r["id"]) for r in rows[:limit]]
        return _page(rows, limit, lambda r: batch_object(r, counts[rows.index(r)]))

    @router.get("/v1/batches/{batch_id}")
    async def get_batch(batch_id: str, request: Request) -> dict[str, Any]:
        return await shaped(await owned_batch(batch_id, await owner(request)))

    @router.post("/v1/batches/{batch_id}/cancel")
    async def cancel(batch_id: str, request: Request) -> dict[str, Any]:
        row = await owned_batch(batch_id, await owner(request))
        if row["status"] in TERMINAL:
            raise InvalidRequestError(f"Cannot cancel a batch that is {row['status']}.", param="batch_id", code="batch_not_cancellable")
        await asyncio.to_thread(store.move, row["id"], "cancelling", only_from=("validating", "in_progress"))
        return await shaped(await asyncio.to_thread(store.batch, row["id"]))

    return router
