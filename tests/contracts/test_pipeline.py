import asyncio

import pytest

from contracts.context import SSE_DONE, Api, Outcome, RequestContext, Status
from contracts.errors import InvalidRequestError
from contracts.pipeline import Pipeline, Stage


class Recorder(Stage):
    name = "recorder"

    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log, self.fail = log, fail

    async def process(self, ctx: RequestContext) -> None:
        self.log.append("process")
        if self.fail:
            raise InvalidRequestError("bad")

    async def settle(self, ctx: RequestContext) -> None:
        self.log.append(f"settle:{ctx.status.value}")


class Answer(Stage):
    name = "answer"

    def __init__(self, outcome_factory) -> None:
        self.outcome_factory = outcome_factory

    async def process(self, ctx: RequestContext) -> None:
        ctx.outcome = self.outcome_factory()


class Never(Stage):
    name = "never"

    async def process(self, ctx: RequestContext) -> None:
        raise AssertionError("a stage after an answer must not run")


def _ctx() -> RequestContext:
    return RequestContext(request_id="r", api=Api.CHAT, model="m", body={}, stream=False, headers={})


async def test_settle_runs_once_after_a_body() -> None:
    log: list[str] = []
    sunk: list[Status] = []
    pipeline = Pipeline([Recorder(log), Answer(lambda: Outcome(body={"ok": 1})), Never()], sinks=[lambda c: sunk.append(c.status)])
    ctx = _ctx()
    await pipeline.run(ctx)
    assert log == ["process", "settle:ok"] and sunk == [Status.OK]
    assert ctx.timings.finished is not None


async def test_settle_runs_on_error_for_the_stages_entered_only() -> None:
    first, second = [], []
    pipeline = Pipeline([Recorder(first, fail=True), Recorder(second)])
    ctx = _ctx()
    with pytest.raises(InvalidRequestError):
        await pipeline.run(ctx)
    assert first == ["process", "settle:error"] and second == []
    assert isinstance(ctx.error, InvalidRequestError)


async def _stream(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("engine died")
        yield f"data: {i}\n\n"
        await asyncio.sleep(0)


async def test_settle_waits_for_the_end_of_a_stream() -> None:
    log: list[str] = []
    pipeline = Pipeline([Recorder(log), Answer(lambda: Outcome(stream=_stream(3)))])
    ctx = _ctx()
    outcome = await pipeline.run(ctx)
    assert log == ["process"], "settle must wait for the stream"
    assert [p async for p in outcome.stream] == ["data: 0\n\n", "data: 1\n\n", "data: 2\n\n"]
    assert log == ["process", "settle:ok"] and ctx.chunks_sent == 3


async def test_the_done_packet_leaves_only_after_the_sinks_ran() -> None:
    order: list[str] = []

    async def stream():
        yield "data: 0\n\n"
        yield "data: 1\n\n" + SSE_DONE  # a batch that carries the terminator with the last chunk

    pipeline = Pipeline([Answer(lambda: Outcome(stream=stream()))], sinks=[lambda c: order.append(f"sink:{c.status.value}")])
    outcome = await pipeline.run(_ctx())
    async for packet in outcome.stream:
        order.append(packet)
    assert order == ["data: 0\n\n", "data: 1\n\n", "sink:ok", SSE_DONE]


async def test_a_stream_failing_after_tokens_settles_as_cut() -> None:
    log: list[str] = []
    pipeline = Pipeline([Recorder(log), Answer(lambda: Outcome(stream=_stream(5, fail_at=2)))])
    outcome = await pipeline.run(_ctx())
    with pytest.raises(RuntimeError):
        async for _ in outcome.stream:
            pass
    assert log == ["process", "settle:cut"]


async def test_a_client_that_goes_away_settles_as_cancelled() -> None:
    log: list[str] = []
    pipeline = Pipeline([Recorder(log), Answer(lambda: Outcome(stream=_stream(100)))])
    outcome = await pipeline.run(_ctx())
    stream = outcome.stream
    await anext(stream)
    await stream.aclose()  # what Starlette does when the client disconnects
    assert log == ["process", "settle:cancelled"]


async def test_a_failing_sink_does_not_stop_the_others() -> None:
    seen: list[str] = []

    def broken(ctx: RequestContext) -> None:
        raise RuntimeError("sink down")

    async def working(ctx: RequestContext) -> None:
        seen.append(ctx.request_id)

    pipeline = Pipeline([Answer(lambda: Outcome(body={}))], sinks=[broken, working])
    await pipeline.run(_ctx())
    assert seen == ["r"]


class Tee(Stage):
    """Keeps what the client gets of a stream, through :meth:`Stage.observe`."""

    name = "tee"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.pipeline: Pipeline | None = None

    async def process(self, ctx: RequestContext) -> None:
        pass

    def attach(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def observe(self, ctx: RequestContext, stream):  # type: ignore[no-untyped-def]
        async def tee():  # type: ignore[no-untyped-def]
            async for packet in stream:
                self.seen.append(packet)
                yield packet

        return tee()


async def test_a_stage_sees_the_stream_the_client_gets_and_knows_its_pipeline() -> None:
    tee = Tee()
    pipeline = Pipeline([tee, Answer(lambda: Outcome(stream=_stream(3)))])
    outcome = await pipeline.run(_ctx())
    sent = [p async for p in outcome.stream]
    assert tee.seen == sent == ["data: 0\n\n", "data: 1\n\n", "data: 2\n\n"] and tee.pipeline is pipeline


async def test_a_run_after_a_named_stage_skips_it_and_those_before() -> None:
    log: list[str] = []
    started: list[str] = []
    pipeline = Pipeline([Recorder(log, fail=True), Tee(), Answer(lambda: Outcome(body={"ok": 1}))],
                        starters=[lambda c: started.append(c.request_id)])
    outcome = await pipeline.run(_ctx(), after="tee")
    assert outcome.body == {"ok": 1} and log == [] and started == ["r"]
    with pytest.raises(ValueError):
        await pipeline.run(_ctx(), after="no-such-stage")
