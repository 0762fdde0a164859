"""Anthropic's Message Batches as a hosted batch API for the batch worker
(:class:`costlevers.batch.hosted.HostedBatches`, matched by shape: fallback does not import the
levers).

Each line's OpenAI chat body becomes a Messages request (:func:`fallback.anthropic_wire.to_messages_request`);
the batch is created with ``POST /messages/batches``, polled until ``processing_status`` is
``ended``, and its results (a JSONL at ``results_url``) come back as OpenAI chat completions
(:func:`fallback.anthropic_wire.from_messages_response`) in OpenAI's batch-output shape. Anthropic
takes chat lines only, and ids matching ``[a-zA-Z0-9_-]{1,64}``: other custom ids go on the wire
as a hash of themselves (the same every time, so a restarted worker finds its answers).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import httpx

from fallback.anthropic_wire import from_messages_response, to_messages_request
from fallback.providers.config import ProviderConfig

__all__ = ["AnthropicBatches"]

_WIRE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: HTTP status an ``errored`` line stands for, by Anthropic's error type.
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403, "not_found_error": 404,
                 "request_too_large": 413, "rate_limit_error": 429, "overloaded_error": 529}


class AnthropicBatches:
    endpoints = frozenset({"/v1/chat/completions"})

    def __init__(self, config: ProviderConfig, *, timeout_s: float = 60.0) -> None:
        headers = {"anthropic-version": config.anthropic_version, **config.auth_headers()}
        self._client = httpx.AsyncClient(base_url=config.base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def wire_id(self, custom_id: str) -> str:
        return custom_id if _WIRE_ID.match(custom_id) else "h-" + hashlib.sha256(custom_id.encode()).hexdigest()[:40]

    async def submit(self, endpoint: str, lines: Sequence[tuple[str, dict[str, Any]]]) -> str:
        if endpoint not in self.endpoints:
            raise ValueError(f"Anthropic's Message Batches take chat lines only, not {endpoint}")
        requests = [{"custom_id": self.wire_id(cid), "params": to_messages_request({**body, "stream": False}, body["model"])}
                    for cid, body in lines]
        created = await self._client.post("/messages/batches", json={"requests": requests})
        created.raise_for_status()
        return str(created.json()["id"])

    async def poll(self, batch_id: str) -> tuple[str, dict[str, dict[str, Any]] | None]:
        response = await self._client.get(f"/messages/batches/{batch_id}")
        response.raise_for_status()
        batch = response.json()
        if batch.get("processing_status") != "ended":
            return "cancelling" if batch.get("processing_status") == "canceling" else "in_progress", None
        results = await self._client.get(batch["results_url"])
        results.raise_for_status()
        out: dict[str, dict[str, Any]] = {}
        for raw in results.content.splitlines():
            if raw.strip():
                item = json.loads(raw)
                out[item["custom_id"]] = _answer(item["custom_id"], item.get("result") or {})
        return "completed", out

    async def aclose(self) -> None:
        await self._client.aclose()


def _answer(wire_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """One result line in OpenAI's batch-output shape."""
    if result.get("type") == "succeeded":
        message = result.get("message") or {}
        body, _ = from_messages_response(message, str(message.get("model", "")))
        return {"response": {"status_code": 200, "request_id": wire_id, "body": body}, "error": None}
    error = (result.get("error") or {}).get("error") or result.get("error") or {}
    kind = str(error.get("type") or result.get("type") or "errored")
    message = str(error.get("message") or f"The hosted batch line ended {result.get('type', 'errored')}.")
    status = _ERROR_STATUS.get(kind, 500)
    body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return {"response": {"status_code": status, "request_id": wire_id, "body": body}, "error": {"code": kind, "message": message}}
