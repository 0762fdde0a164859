"""A hosted batch API for tests: OpenAI's files + batches protocol and Anthropic's Message
Batches on loopback, each line run through a real server (vLLM's own, which speaks OpenAI and
Anthropic Messages, in the e2e tests) when the batch is created. It keeps everything in memory
and serves one process; the real parts are the protocols and the answers."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

__all__ = ["batch_api"]


def batch_api(upstream: str, api_key: str | None) -> FastAPI:
    """``upstream``: the server's root (``http://host:port``) whose ``/v1/...`` endpoints answer the lines."""
    app = FastAPI()
    files: dict[str, bytes] = {}
    batches: dict[str, dict[str, Any]] = {}
    tasks: set[asyncio.Task[None]] = set()
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}

    @app.post("/v1/files")
    async def upload(request: Request) -> dict[str, Any]:
        form = await request.form()
        data = await form["file"].read()  # type: ignore[union-attr]
        file_id = f"file-{secrets.token_hex(6)}"
        files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()), "filename": "in.jsonl",
                "purpose": form["purpose"]}

    @app.get("/v1/files/{file_id}/content")
    async def content(file_id: str) -> Response:
        return Response(files[file_id], media_type="application/octet-stream")

    async def run(batch: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        out = []
        async with httpx.AsyncClient(base_url=upstream, headers=headers, timeout=300) as client:
            for line in lines:
                answer = await client.post(line["url"], json=line["body"])
                out.append({"id": f"r-{line['custom_id']}", "custom_id": line["custom_id"],
                            "response": {"status_code": answer.status_code, "request_id": line["custom_id"], "body": answer.json()},
                            "error": None})
        output_id = f"file-{secrets.token_hex(6)}"
        files[output_id] = b"".join(json.dumps(o).encode() + b"\n" for o in out)
        batch.update(status="completed", output_file_id=output_id, completed_at=int(time.time()),
                     request_counts={"total": len(out), "completed": len(out), "failed": 0})

    @app.post("/v1/batches")
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        lines = [json.loads(raw) for raw in files[body["input_file_id"]].splitlines() if raw.strip()]
        batch = {"id": f"batch-{secrets.token_hex(6)}", "object": "batch", "endpoint": body["endpoint"], "status": "in_progress",
                 "input_file_id": body["input_file_id"], "completion_window": body["completion_window"], "output_file_id": None,
                 "error_file_id": None, "created_at": int(time.time()), "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        batches[batch["id"]] = batch
        task = asyncio.create_task(run(batch, lines))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return batch

    @app.get("/v1/batches/{batch_id}")
    async def get(batch_id: str) -> dict[str, Any]:
        return batches[batch_id]

    async def run_messages(batch: dict[str, Any], requests: list[dict[str, Any]]) -> None:
        out = []
        async with httpx.AsyncClient(base_url=upstream, headers=headers, timeout=300) as client:
            for item in requests:
                answer = await client.post("/v1/messages", json=item["params"])
                result = ({"type": "succeeded", "message": answer.json()} if answer.status_code == 200 else
                          {"type": "errored", "error": {"type": "error", "error": answer.json().get("error") or {}}})
                out.append({"custom_id": item["custom_id"], "result": result})
        files[batch["id"]] = b"".join(json.dumps(o).encode() + b"\n" for o in out)
        succeeded = sum(o["result"]["type"] == "succeeded" for o in out)
        batch.update(processing_status="ended", ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     request_counts={"processing": 0, "succeeded": succeeded, "errored": len(out) - succeeded, "canceled": 0, "expired": 0})

    @app.post("/v1/messages/batches")
    async def create_messages(request: Request) -> dict[str, Any]:
        requests = (await request.json())["requests"]
        batch_id = f"msgbatch_{secrets.token_hex(6)}"
        batch = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
                 "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                 "results_url": f"{str(request.base_url).rstrip('/')}/v1/messages/batches/{batch_id}/results"}
        batches[batch_id] = batch
        task = asyncio.create_task(run_messages(batch, requests))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return batch

    @app.get("/v1/messages/batches/{batch_id}")
    async def get_messages(batch_id: str) -> dict[str, Any]:
        return batches[batch_id]

    @app.get("/v1/messages/batches/{batch_id}/results")
    async def results(batch_id: str) -> Response:
        return Response(files[batch_id], media_type="application/binary")

    return app
