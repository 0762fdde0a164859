"""The hosted API as the simulator sees it: list prices, a first-token-time distribution and a rate limit.

A hosted API is not a constant-latency sink that meets any target. Its first-token time is drawn
from a lognormal fitted to a public measurement (the one ``bench/hosted_standin.py`` cites:
Anyscale's LLMPerf leaderboard, Together AI serving Llama-2-70B-chat, 2023-12-19,
https://github.com/ray-project/llmperf-leaderboard/blob/23af37e3750cc5c7d4a6f8c9dafad186f6c9a7d8/raw_data/summary/together_70b.json:
TTFT p50 0.6353 s, p90 0.7336 s; mu = ln(p50), sigma = ln(p90 / p50) / 1.2816). Its tokens per
minute are limited by a token bucket holding one minute's allowance, as OpenAI's TPM limits count
prompt plus output tokens: a request the bucket cannot pay for waits, behind earlier waiters, until
it refills; one that would wait longer than ``max_wait_s`` gives up (no first token, no charge).
Input tokens a trace marks as a shared prefix are billed at the cached-input price.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

__all__ = ["HostedModel", "HostedSide", "LLMPERF_TTFT"]

#: (mu, sigma) of the LLMPerf TTFT lognormal above.
LLMPERF_TTFT = (math.log(0.6352748079999628), math.log(0.7336474150000185 / 0.6352748079999628) / 1.2816)


@dataclass(frozen=True)
class HostedModel:
    """The hosted target: prices per million tokens, its time to first token and its rate limit.

    The first token takes, in order of precedence: a lognormal draw (``ttft_lognormal`` = mu,
    sigma), the measured ``ttft_samples`` in turn, or the constant ``ttft_s``.
    """

    input_usd_per_mtok: float
    output_usd_per_mtok: float
    ttft_s: float = 1.0
    ttft_samples: tuple[float, ...] = ()
    ttft_lognormal: tuple[float, float] | None = None
    #: Cached input tokens' price; ``None``: the full input price.
    cached_input_usd_per_mtok: float | None = None
    #: Prompt plus output tokens per minute; ``None``: no limit.
    tokens_per_minute: float | None = None
    max_wait_s: float = 30.0
    seed: int = 0

    def cost(self, prompt: int, output: int, cached: int = 0) -> float:
        cached_price = self.input_usd_per_mtok if self.cached_input_usd_per_mtok is None else self.cached_input_usd_per_mtok
        return ((prompt - cached) * self.input_usd_per_mtok + cached * cached_price + output * self.output_usd_per_mtok) / 1e6


class HostedSide:
    """One simulation's hosted API: its random draws and its bucket, in arrival order."""

    def __init__(self, model: HostedModel) -> None:
        self.model = model
        self._rng = random.Random(model.seed)
        self._samples = itertools.cycle(model.ttft_samples or (model.ttft_s,))
        self._level = model.tokens_per_minute or 0.0
        self._at = 0.0

    def call(self, now: float, prompt: int, output: int, cached: int = 0) -> tuple[float | None, float]:
        """When the first token comes (``None``: gave up on the rate limit) and what it cost."""
        wait = self._admit(now, prompt + output)
        if wait is None:
            return None, 0.0
        return now + wait + self._ttft(), self.model.cost(prompt, output, cached)

    def _admit(self, now: float, tokens: int) -> float | None:
        limit = self.model.tokens_per_minute
        if limit is None:
            return 0.0
        rate = limit / 60
        self._level = min(limit, self._level + (now - self._at) * rate)
        self._at = now
        # A negative level is the debt of the requests already waiting: a newcomer waits behind them.
        wait = max(0.0, (tokens - self._level) / rate)
        if wait > self.model.max_wait_s or tokens > limit:
            return None
        self._level -= tokens
        return wait

    def _ttft(self) -> float:
        if self.model.ttft_lognormal is not None:
            mu, sigma = self.model.ttft_lognormal
            return self._rng.lognormvariate(mu, sigma)
        return next(self._samples)
