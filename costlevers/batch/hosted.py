"""Hosted batch APIs: where lines go when local capacity will not finish them in the window.

:class:`HostedBatches` is what the worker needs of one: submit ``(custom_id, body)`` lines for
an endpoint, poll the batch until it has ended, and read each line's answer back in OpenAI's
batch-output shape (``response.status_code``, ``response.body``, ``error``). OpenAI's files +
batches protocol is spoken here (:class:`OpenAIBatches`: OpenAI, Together, Fireworks, another
spillover); Anthropic's Message Batches, which need its wire translation, live with that
translation (``fallback/providers/anthropic_batches.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

__all__ = ["ENDED", "HostedBatches", "OpenAIBatches", "Answers"]

#: A hosted batch's statuses, in OpenAI's words, after which its answers are final.
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
#: Per line (its id on the wire), the answer in OpenAI's batch-output shape.
Answers = dict[str, dict[str, Any]]


class HostedBatches(Protocol):
    #: The batch endpoints this API takes (``/v1/chat/completions``, ...).
    endpoints: frozenset[str]

    def wire_id(self, custom_id: str) -> str:
        """The line's id as this API carries it (answers come back under it)."""

    async def submit(self, endpoint: str, lines: Sequence[tuple[str, dict[str, Any]]]) -> str:
        """Start a batch on ``(custom_id, body)`` lines (bodies in OpenAI's shape, the provider's
        model named): its id."""

    async def poll(self, batch_id: str) -> tuple[str, Answers | None]:
        """The batch's status (OpenAI's words) and, once it has ended, every answer by wire id."""

    async def aclose(self) -> None: ...


class OpenAIBatches:
    """OpenAI's protocol: upload the lines as a JSONL file (``purpose=batch``), create a batch on
    it, poll it, download its output and error files."""

    endpoints = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})

    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def wire_id(self, custom_id: str) -> str:
        return custom_id

    async def submit(self, endpoint: str, lines: Sequence[tuple[str, dict[str, Any]]]) -> str:
        data = b"".join(json.dumps({"custom_id": cid, "method": "POST", "url": endpoint, "body": body}).encode() + b"\n" for cid, body in lines)
        uploaded = await self._client.post("/files", files={"file": ("spillover-handoff.jsonl", data)}, data={"purpose": "batch"})
        uploaded.raise_for_status()
        created = await self._client.post("/batches", json={"input_file_id": uploaded.json()["id"], "endpoint": endpoint,
                                                             "completion_window": "24h"})
        created.raise_for_status()
        return str(created.json()["id"])

    async def poll(self, batch_id: str) -> tuple[str, Answers | None]:
        response = await self._client.get(f"/batches/{batch_id}")
        response.raise_for_status()
        batch = response.json()
        status = str(batch.get("status"))
        if status not in ENDED:
            return status, None
        out: Answers = {}
        for key in ("output_file_id", "error_file_id"):
            if batch.get(key):
                content = await self._client.get(f"/files/{batch[key]}/content")
                content.raise_for_status()
                for raw in content.content.splitlines():
                    if raw.strip():
                        item = json.loads(raw)
                        out[item["custom_id"]] = {"response": item.get("response"), "error": item.get("error")}
        return status, out

    async def aclose(self) -> None:
        await self._client.aclose()
