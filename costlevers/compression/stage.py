"""The compress stage: after routing, before dispatch, a long prompt on a compressing route is cut
to the route's target, question-aware and extractive (:mod:`costlevers.compression.select`).

It runs on the route chosen for the request (a routed name's candidate, each cascade attempt's
own), so the chosen model's tokenizer counts the budget. Only the compressible pieces are cut
(:mod:`costlevers.compression.chat`); when the protected parts leave too little room for the
target, the compressible part is cut by the route's ``max_ratio`` and no further, and the outcome
says ``floor``. The reached ratio goes in the response header and the ledger row, never silently
short of what was asked. A compression that fails sends the request on uncompressed (logged
without prompt text), never fails it. ``x-spillover-compression: off`` opts a request out.

The cache ran before this stage on the original body, so the same request still hits it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.compression import COMPRESS_HEADER, Compression, CompressOutcome
from contracts.context import Api, RequestContext
from contracts.pipeline import Stage
from contracts.tokens import prompt_chars
from costlevers.compression.chat import append_instruction, compressible_pieces, rebuild
from costlevers.compression.config import CompressionConfig
from costlevers.compression.metrics import CompressionMetrics
from costlevers.compression.scoring import DEFAULT_WEIGHTS, ScoreWeights, score_units
from costlevers.compression.segments import Passage, join_kept, split_passages
from costlevers.compression.select import calibrated_count, keep_within

__all__ = ["CompressPolicy", "CompressStage", "compress_messages"]

logger = logging.getLogger(__name__)

#: A route's prompt-token count of a body (its local model's tokenizer, else chars/4).
Recount = Callable[[str, dict[str, Any]], int]


@dataclass(frozen=True)
class CompressPolicy:
    config: CompressionConfig
    weights: ScoreWeights = DEFAULT_WEIGHTS


@dataclass(frozen=True)
class _Cut:
    messages: list[Any]
    outcome: CompressOutcome


def compress_messages(messages: list[Any], original_tokens: int, policy: CompressPolicy, *, tool_chars: int = 0) -> _Cut:
    """``messages`` (``original_tokens`` by the route's counter, with tool definitions of
    ``tool_chars`` characters) with their compressible pieces cut to the policy's target; pieces
    are costed at the prompt's own tokens per character
    (:func:`costlevers.compression.select.calibrated_count`), the result is recounted exactly."""
    config = policy.config
    pieces, question = compressible_pieces(messages, config.keep_last_turns)
    if not pieces or not question:
        return _Cut(messages, CompressOutcome.UNTOUCHED)
    count = calibrated_count(original_tokens, prompt_chars({"messages": messages}) + tool_chars)
    compressible = sum(count([p.text for p in pieces]))
    wanted = original_tokens / config.ratio if config.ratio is not None else config.max_prompt_tokens
    if compressible < config.min_tokens or wanted is None or original_tokens <= wanted:
        return _Cut(messages, CompressOutcome.UNTOUCHED)
    budget = math.floor(wanted - (original_tokens - compressible))
    floor = math.ceil(compressible / config.max_ratio)
    outcome = CompressOutcome.COMPRESSED if budget >= floor else CompressOutcome.FLOOR
    passages: list[Passage] = []
    owner: list[int] = []
    for index, piece in enumerate(pieces):
        split = split_passages(piece.text)
        passages.extend(split)
        owner.extend([index] * len(split))
    kept = keep_within(passages, score_units(passages, question, policy.weights), max(budget, floor), count)
    first = {index: owner.index(index) for index in set(owner)}  # a piece's passages are consecutive
    texts = []
    for index in range(len(pieces)):
        mine = [passages[p] for p, o in enumerate(owner) if o == index]
        local = {(p - first[index], u) for p, u in kept if owner[p] == index}
        texts.append(join_kept(mine, local))
    # The cut context still ends with a blank line before its tail (the question).
    texts = [text + "\n\n" if text and piece.tail and not piece.tail[:1].isspace() else text for text, piece in zip(texts, pieces)]
    return _Cut(rebuild(messages, pieces, texts), outcome)


class CompressStage(Stage):
    name = "compress"

    def __init__(self, policies: Mapping[str, CompressPolicy], *, recount: Recount, metrics: CompressionMetrics | None = None) -> None:
        self._policies = policies
        self._recount = recount
        self._metrics = metrics

    async def process(self, ctx: RequestContext) -> None:
        policy = self._policies.get(ctx.route)
        if policy is None or ctx.api is not Api.CHAT or not isinstance(ctx.body.get("messages"), list):
            return
        config = policy.config
        original = ctx.facts.prompt_tokens or self._recount(ctx.route, ctx.body)
        if ctx.headers.get(COMPRESS_HEADER, "").strip().lower() == "off":
            self._keep(ctx, Compression(CompressOutcome.OPT_OUT, original, original, config.target_text))
            return
        started = time.perf_counter()
        messages = ctx.body["messages"]
        outcome = CompressOutcome.UNTOUCHED
        if config.ratio is not None or config.max_prompt_tokens is not None:
            try:
                tool_chars = len(json.dumps(ctx.body["tools"])) if ctx.body.get("tools") else 0
                cut = await asyncio.to_thread(compress_messages, messages, original, policy, tool_chars=tool_chars)
                messages, outcome = cut.messages, cut.outcome
            except Exception as exc:  # noqa: BLE001 - a failed compression never fails the request
                logger.warning("compression failed for %s on route %s (%s); sent uncompressed", ctx.request_id, ctx.route, type(exc).__name__)
                self._keep(ctx, Compression(CompressOutcome.ERROR, original, original, config.target_text,
                                            elapsed_ms=(time.perf_counter() - started) * 1000))
                return
        if config.concise:
            messages = append_instruction(messages, config.concise_instruction)
        if messages is not ctx.body["messages"]:
            ctx.body = {**ctx.body, "messages": messages}
            ctx.facts = dataclasses.replace(ctx.facts, prompt_tokens=self._recount(ctx.route, ctx.body))
        self._keep(ctx, Compression(outcome, original, ctx.facts.prompt_tokens or original, config.target_text, concise=config.concise,
                                    elapsed_ms=(time.perf_counter() - started) * 1000))

    def _keep(self, ctx: RequestContext, result: Compression) -> None:
        ctx.put(result)
        if self._metrics is not None:
            self._metrics.observe(ctx.route, result)
