"""The tables costbook keeps: the ledger, local intervals and the API keys. Alembic's migrations
(stores/migrations) create them; these definitions are what the code queries."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["keys_table", "ledger_table", "local_intervals_table", "metadata"]

metadata = sa.MetaData()
ledger_table = sa.Table(
    "spillover_ledger",
    metadata,
    sa.Column("request_id", sa.String(80), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, index=True),
    sa.Column("feature", sa.String(128)),
    sa.Column("api", sa.String(16), nullable=False),
    sa.Column("model_asked", sa.String(256), nullable=False),
    sa.Column("model_served", sa.String(256)),
    sa.Column("destination", sa.String(64)),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("cached_tokens", sa.Integer, nullable=False),
    sa.Column("cache_write_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False),
    sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
    sa.Column("price_version", sa.String(64), nullable=False),
    sa.Column("cache_result", sa.String(16), nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("total_ms", sa.Float),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("spill_reason", sa.String(32)),
    #: When the request finished: local work is priced by the interval it finished in.
    sa.Column("finished_at", sa.DateTime(timezone=True), index=True),
    sa.Column("router", sa.String(32)),
    sa.Column("route_score", sa.Float),
    sa.Column("route_reason", sa.String(32)),
    sa.Column("escalations", sa.String(512)),
    sa.Column("attempt_of", sa.String(80), index=True),
)

#: Per local model and interval: its replicas' time, what it cost, and how much of it the
#: requests that finished in it took (by tokens); the rest is idle. attributed + idle = cost.
local_intervals_table = sa.Table(
    "spillover_local_intervals",
    metadata,
    sa.Column("model", sa.String(256), primary_key=True),
    sa.Column("start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("interval_s", sa.Integer, nullable=False),
    sa.Column("replicas", sa.Integer, nullable=False),
    sa.Column("up_s", sa.Float, nullable=False),
    sa.Column("busy_s", sa.Float, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
    sa.Column("attributed_micro_usd", sa.BigInteger, nullable=False),
    sa.Column("idle_micro_usd", sa.BigInteger, nullable=False),
    sa.Column("usd_per_replica_hour", sa.Numeric(12, 6), nullable=False),
    sa.Column("price_version", sa.String(64), nullable=False),
)

keys_table = sa.Table(
    "spillover_api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    #: HMAC-SHA-256 of the key under the server's secret: the key itself is never stored.
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False),
    sa.Column("budget_micro_usd", sa.BigInteger),
    sa.Column("rpm", sa.Integer),
    sa.Column("tpm", sa.Integer),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)
