"""The ``monitor`` section: the dashboard, the ledger rollups, alert rules and their webhooks.

Defaults follow the brief's seed: daily spend above 2x the trailing 7-day average (global, per
team, per user, per feature), budget soft limits at 80/90/100%, a cache hit-rate drop and an
error spike. A malformed rule fails at start naming its field (unknown keys, a resolve level on
the wrong side of its fire level). Webhook URLs are secrets (a Slack URL is its own credential),
so the YAML names the environment variable that holds each.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AlertsConfig", "BudgetRule", "MonitorConfig", "RateRule", "SpendRule", "WebhookConfig", "SCOPES"]

SCOPES = ("global", "team", "user", "feature")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpendRule(_Strict):
    """Spend over the last ``window_h`` against the same hours of day over the trailing
    ``baseline_days`` (their mean): the seed's "daily spend above 2x the trailing 7-day average",
    read at an hourly resolution so a spike is caught the hour it starts, not a day later."""

    enabled: bool = True
    scopes: list[Literal["global", "team", "user", "feature"]] = Field(default_factory=lambda: list(SCOPES))
    window_h: Annotated[int, Field(ge=1, le=24)] = 1
    baseline_days: Annotated[int, Field(ge=1, le=28)] = 7
    factor: Annotated[float, Field(gt=1)] = 2.0
    resolve_factor: Annotated[float, Field(ge=1)] = 1.5
    min_usd: Annotated[float, Field(ge=0)] = Field(
        1.0, description="Spend in the window below this never fires (a user going from 1 to 3 cents is not an incident).")

    @model_validator(mode="after")
    def _hysteresis(self) -> SpendRule:
        if self.resolve_factor >= self.factor:
            raise ValueError(f"resolve_factor ({self.resolve_factor}) must be below factor ({self.factor})")
        return self


class RateRule(_Strict):
    """A share of requests (cache hits, errors, spills) over the last ``window_s`` (widened for
    quiet traffic until it holds ``min_requests``) against its mean over the trailing ``baseline_h``. ``direction: below`` fires when the share falls under
    ``factor`` x baseline (cache hits), ``above`` when it rises over ``factor`` x baseline and
    over ``floor`` (errors, spills)."""

    enabled: bool = True
    direction: Literal["above", "below"]
    window_s: Annotated[int, Field(ge=60, le=86400)] = 300
    baseline_h: Annotated[int, Field(ge=1, le=168)] = 24
    factor: Annotated[float, Field(gt=0)]
    resolve_factor: Annotated[float, Field(gt=0)]
    floor: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_requests: Annotated[int, Field(ge=1)] = Field(
        200, description="The window widens past window_s (up to max_window_s) until it holds this many requests; with fewer "
        "even then, nothing fires.")
    max_window_s: Annotated[int, Field(ge=60, le=86400)] = 1800

    @model_validator(mode="after")
    def _hysteresis(self) -> RateRule:
        if self.max_window_s < self.window_s:
            raise ValueError(f"max_window_s ({self.max_window_s}) must be at least window_s ({self.window_s})")
        wrong = self.resolve_factor >= self.factor if self.direction == "above" else self.resolve_factor <= self.factor
        if wrong:
            side = "below" if self.direction == "above" else "above"
            raise ValueError(f"resolve_factor ({self.resolve_factor}) must be {side} factor ({self.factor}) for direction {self.direction!r}")
        return self


class BudgetRule(_Strict):
    enabled: bool = True
    thresholds: list[Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=lambda: [0.8, 0.9, 1.0])


class WebhookConfig(_Strict):
    url_env: str = Field(description="Environment variable holding the webhook's URL (never the URL itself: it is a credential).")
    format: Literal["slack", "alertmanager"] = Field(description="Slack-compatible JSON (`text`, `blocks`) or Alertmanager's webhook payload.")
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    attempts: Annotated[int, Field(ge=1, le=10)] = 4


class AlertsConfig(_Strict):
    enabled: bool = True
    evaluate_every_s: Annotated[float, Field(ge=5, le=3600)] = 60.0
    for_evaluations: Annotated[int, Field(ge=1, le=60)] = Field(
        2, description="Consecutive evaluations a condition holds before it fires (2 at one a minute: the PrometheusRules' `for: 1m`).")
    resolve_evaluations: Annotated[int, Field(ge=1, le=60)] = Field(3, description="Consecutive evaluations under the resolve level before it resolves.")
    repeat_s: Annotated[float, Field(ge=60)] = Field(4 * 3600, description="A still-firing alert is sent again after this long.")
    spend: SpendRule = SpendRule()
    budget: BudgetRule = BudgetRule()
    cache_hit_drop: RateRule = RateRule(direction="below", factor=0.7, resolve_factor=0.85)
    error_spike: RateRule = RateRule(direction="above", factor=3.0, resolve_factor=2.0, floor=0.05)
    spill_spike: RateRule = RateRule(direction="above", factor=2.0, resolve_factor=1.5, floor=0.2)
    webhooks: list[WebhookConfig] = Field(default_factory=list)


class MonitorConfig(_Strict):
    dashboard: bool = Field(True, description="Serve `GET /dashboard` (admin key required when auth is on).")
    rollup_recompute_h: Annotated[int, Field(ge=1, le=72)] = Field(
        3, description="Each pass re-aggregates this many trailing hours of the ledger (rows written late land in them).")
    gpu_metrics_url: str | None = Field(
        None, description="A Prometheus text endpoint with DCGM names (the NVML exporter, or dcgm-exporter) for the GPU panels.")
    alerts: AlertsConfig = AlertsConfig()
