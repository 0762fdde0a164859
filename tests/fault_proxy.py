"""A fault-injecting HTTP proxy in front of a real server (here: vLLM's own OpenAI server).

Each request takes the next fault from ``faults`` (then passes through cleanly): ``429``
(with ``Retry-After``), ``500``, ``529``, ``slow`` (first byte after ``slow_s``), ``cut``
(the stream stops after a few chunks and the connection drops), or ``reset`` (the connection is
closed with no response). It never answers in the server's place: every successful byte comes
from the real server.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.helpers import UvicornThread

_FAULT_BODIES = {
    429: {"error": {"message": "Rate limit reached", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}},
    500: {"error": {"message": "Internal error", "type": "server_error", "param": None, "code": None}},
    529: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
}


class _Reset(Exception):
    """Raised inside a response body: uvicorn drops the connection mid-message."""


class FaultProxy:
    def __init__(self, upstream: str, *, slow_s: float = 5.0, cut_after_chunks: int = 3) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: deque[str] = deque()
        self.slow_s = slow_s
        self.cut_after_chunks = cut_after_chunks
        self.requests = 0
        self.headers_seen: list[dict[str, str]] = []
        self.bodies_seen: list[bytes] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        self._server = UvicornThread(app)
        self.base_url = self._server.base_url

    def __enter__(self) -> FaultProxy:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def inject(self, *faults: str) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            return self.faults.popleft() if self.faults else None

    async def _handle(self, request: Request) -> Response:
        fault = self._next_fault()
        self.headers_seen.append({k.lower(): v for k, v in request.headers.items()})
        if fault in ("429", "500", "529"):
            status = int(fault)
            headers = {"retry-after": "1"} if status == 429 else {}
            return JSONResponse(_FAULT_BODIES[status], status_code=status, headers=headers)
        if fault == "reset":
            return StreamingResponse(_reset_body())
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        body = await request.body()
        self.bodies_seen.append(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        client = httpx.AsyncClient(timeout=300)
        upstream = await client.send(client.build_request(request.method, self.upstream + "/" + request.path_params["path"], content=body, headers=headers), stream=True)
        passthrough = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "retry-after")}
        return StreamingResponse(
            self._relay(upstream, client, cut=fault == "cut"), status_code=upstream.status_code, headers=passthrough
        )

    async def _relay(self, upstream: httpx.Response, client: httpx.AsyncClient, *, cut: bool) -> AsyncIterator[bytes]:
        try:
            chunks = 0
            async for chunk in upstream.aiter_raw():
                yield chunk
                chunks += 1
                if cut and chunks >= self.cut_after_chunks:
                    raise _Reset("cut mid-stream")
        finally:
            await upstream.aclose()
            await client.aclose()


async def _reset_body() -> AsyncIterator[bytes]:
    raise _Reset("connection reset")
    yield b""  # pragma: no cover  # makes this an async generator
