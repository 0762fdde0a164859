"""The first chunk leaves at once; later chunks are batched; cancellation reaches the source."""

import asyncio
import time
from collections.abc import AsyncGenerator

import pytest
from ray.llm._internal.serve.utils.batcher import Batcher

from serving.stream_batching import FirstChunkFirstBatcher

INTERVAL_MS = 400


async def chunks(delays_s: list[float], log: list[str]) -> AsyncGenerator[int, None]:
    try:
        for i, delay in enumerate(delays_s):
            await asyncio.sleep(delay)
            yield i
    finally:
        log.append("closed")


async def first_batch_after(batcher_cls: type[Batcher]) -> tuple[float, list[list[int]]]:
    start = time.monotonic()
    batches, first_at = [], None
    async for batch in batcher_cls(chunks([0.02, 0.01, 0.01, 0.6], []), interval_ms=INTERVAL_MS).stream():
        first_at = first_at or time.monotonic() - start
        batches.append(batch)
    return first_at, batches


async def test_first_chunk_is_not_held_for_the_interval() -> None:
    first_at, batches = await first_batch_after(FirstChunkFirstBatcher)
    assert first_at < INTERVAL_MS / 1000 / 2, "the first chunk must not wait for the batching clock"
    assert batches == [[0], [1, 2], [3]], "the chunks after the first are still batched; order kept"


async def test_rays_batcher_holds_it_which_is_what_we_fix() -> None:
    first_at, batches = await first_batch_after(Batcher)
    assert first_at >= INTERVAL_MS / 1000 * 0.9 and batches == [[0, 1, 2], [3]]


@pytest.mark.parametrize("interval_ms", [0, None])
async def test_unbatched_and_single_batch_modes_behave_like_rays(interval_ms: float | None) -> None:
    ours = [b async for b in FirstChunkFirstBatcher(chunks([0, 0, 0], []), interval_ms=interval_ms).stream()]
    rays = [b async for b in Batcher(chunks([0, 0, 0], []), interval_ms=interval_ms).stream()]
    assert ours == rays


async def test_cancelling_before_the_first_chunk_stops_the_source() -> None:
    log: list[str] = []
    stream = FirstChunkFirstBatcher(chunks([10.0], log), interval_ms=INTERVAL_MS).stream()
    task = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert log == ["closed"]


async def test_a_failing_source_raises_through_the_stream() -> None:
    async def failing() -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError, match="engine died"):
        async for _ in FirstChunkFirstBatcher(failing(), interval_ms=INTERVAL_MS).stream():
            pass
