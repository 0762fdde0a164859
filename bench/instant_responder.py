"""An instant OpenAI-compatible upstream, for the costs benchmark only (bench/costs.py).

It answers ``POST .../chat/completions`` at once with one fixed, valid ``chat.completion``
body (``usage`` included), so a proxy's latency over it is the proxy's own. Raw ASGI under
uvicorn: no framework of its own to add time. ``stream: true`` gets the same answer as three SSE
events (role and text, finish, usage) and ``[DONE]``.

    python bench/instant_responder.py PORT
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
BODY = json.dumps({
    "id": "chatcmpl-instant", "object": "chat.completion", "created": 1764288000, "model": "instant",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there!"}, "finish_reason": "stop", "logprobs": None}],
    "usage": USAGE,
}, separators=(",", ":")).encode()


def _event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
    chunk = {"id": "chatcmpl-instant", "object": "chat.completion.chunk", "created": 1764288000, "model": "instant",
             "choices": choices, **({"usage": usage} if usage else {})}
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


STREAM = b"".join([
    _event([{"index": 0, "delta": {"role": "assistant", "content": "Hi there!"}, "finish_reason": None}]),
    _event([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    _event([], USAGE),
    b"data: [DONE]\n\n",
])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:  # read the whole request: a keep-alive connection must be left clean
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
        await _answer(send, 404, b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}')
        return
    streamed = b'"stream":true' in body.replace(b" ", b"")
    await _answer(send, 200, STREAM if streamed else BODY, b"text/event-stream" if streamed else b"application/json")


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", access_log=False, log_level="warning")
