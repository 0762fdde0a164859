"""Server-sent events: the ``data`` of each event, from an async stream of lines.

Enough of the SSE format for OpenAI's and Anthropic's streams: ``data:`` lines (joined with
newlines when an event has several), other fields (``event:``, ``id:``) and comments ignored,
a blank line ending the event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["sse_data"]


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)
