"""A hosted batch API, OpenAI's protocol: upload the lines as a JSONL file (``purpose=batch``),
create a batch on it, poll it, download its output and error files, and read each line's result
back by ``custom_id``. Any server speaking that protocol will do (OpenAI, Together, Fireworks,
another spillover). Anthropic's Message Batches are not spoken here yet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

__all__ = ["HostedBatchAPI"]


class HostedBatchAPI:
    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    async def submit(self, endpoint: str, lines: Sequence[tuple[str, dict[str, Any]]]) -> str:
        """Upload ``(custom_id, body)`` lines and start a batch on them: its id."""
        data = b"".join(json.dumps({"custom_id": cid, "method": "POST", "url": endpoint, "body": body}).encode() + b"\n" for cid, body in lines)
        uploaded = await self._client.post("/files", files={"file": ("spillover-handoff.jsonl", data)}, data={"purpose": "batch"})
        uploaded.raise_for_status()
        created = await self._client.post("/batches", json={"input_file_id": uploaded.json()["id"], "endpoint": endpoint,
                                                             "completion_window": "24h"})
        created.raise_for_status()
        return str(created.json()["id"])

    async def status(self, batch_id: str) -> dict[str, Any]:
        response = await self._client.get(f"/batches/{batch_id}")
        response.raise_for_status()
        return dict(response.json())

    async def results(self, batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Per ``custom_id``, its output or error line (``response``, ``error``)."""
        out: dict[str, dict[str, Any]] = {}
        for key in ("output_file_id", "error_file_id"):
            if batch.get(key):
                response = await self._client.get(f"/files/{batch[key]}/content")
                response.raise_for_status()
                for raw in response.content.splitlines():
                    if raw.strip():
                        item = json.loads(raw)
                        out[item["custom_id"]] = {"response": item.get("response"), "error": item.get("error")}
        return out

    async def aclose(self) -> None:
        await self._client.aclose()
