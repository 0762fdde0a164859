"""The tables costbook keeps: the ledger, local intervals and the API keys. Alembic's migrations
(stores/migrations) create them; these definitions are what the code queries."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "alerts_table", "batch_files_table", "experiments_table", "feedback_table", "batch_lines_table", "batches_table", "keys_table", "leases_table", "ledger_hourly_table",
    "ledger_table", "local_intervals_table", "metadata",
]

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
    sa.Column("batch_id", sa.String(64), index=True),
    sa.Column("compression", sa.String(16)),
    sa.Column("prompt_tokens_original", sa.Integer),
    sa.Column("compression_saved_micro_usd", sa.BigInteger),
    sa.Column("sync_cost_micro_usd", sa.BigInteger),
    sa.Column("experiment", sa.String(64), index=True),
    sa.Column("variant", sa.String(64)),
    sa.Column("finish_reason", sa.String(32)),
    #: A short hash of the prompt: the same user sending it again within a minute is a retry.
    sa.Column("prompt_hash", sa.String(32)),
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

#: Files uploaded for batches (OpenAI's Files API, ``purpose=batch``) and those batches write; the
#: bytes live in a directory (costlevers.batch), the rows here.
batch_files_table = sa.Table(
    "spillover_batch_files",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False, index=True),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("filename", sa.String(256), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)

#: One row per batch: OpenAI's batch object, its owner, and its timestamps (epoch seconds).
batches_table = sa.Table(
    "spillover_batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False, index=True),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False),
    sa.Column("feature", sa.String(128)),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("input_file_id", sa.String(64), nullable=False),
    sa.Column("completion_window", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("in_progress_at", sa.BigInteger),
    sa.Column("finalizing_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
    sa.Column("failed_at", sa.BigInteger),
    sa.Column("expired_at", sa.BigInteger),
    sa.Column("cancelling_at", sa.BigInteger),
    sa.Column("cancelled_at", sa.BigInteger),
    sa.Column("output_file_id", sa.String(64)),
    sa.Column("error_file_id", sa.String(64)),
    sa.Column("errors", sa.Text),
    sa.Column("batch_metadata", sa.Text),
    sa.Column("total", sa.Integer, nullable=False),
    #: The hosted batch the lines left over were handed to, when the window would not hold them.
    sa.Column("hosted_batch_id", sa.String(128)),
)

#: Each line of a batch and what became of it; a line's result is written here before it counts.
batch_lines_table = sa.Table(
    "spillover_batch_lines",
    metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("custom_id", sa.String(512), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    #: pending, hosted (handed to a hosted batch, awaiting it), done (a 2xx answer), failed (an error answer)
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("result", sa.Text),
    sa.Column("finished_at", sa.BigInteger),
    #: The line's worst-case cost, held in its owner's budgets from the batch's creation until it
    #: leaves ``pending``/``hosted`` (or the batch ends without it).
    sa.Column("reserved_micro_usd", sa.BigInteger, nullable=False, server_default="0"),
    #: The worker running the line and until when its claim holds (renewed while it runs): with
    #: several ingress replicas on one database, a line runs on one of them.
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_until", sa.Float),
)

#: The ledger summed per hour and per who/what/where (monitor.rollup): the dashboard and the spend
#: alerts read 30 days of it instead of a million rows. Empty strings stand for "none" so every
#: dimension groups the same on SQLite and PostgreSQL.
ledger_hourly_table = sa.Table(
    "spillover_ledger_hourly",
    metadata,
    sa.Column("hour", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("team", sa.String(128), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("feature", sa.String(128), nullable=False),
    sa.Column("model_asked", sa.String(256), nullable=False),
    #: local, a provider's name, or "" (served from the cache, or never dispatched)
    sa.Column("destination", sa.String(64), nullable=False),
    sa.Column("spill_reason", sa.String(32), nullable=False),
    sa.Column("cache_result", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("compression_saved_micro_usd", sa.BigInteger, nullable=False),
)

#: Alerts the evaluator raised: one row per alert identity (rule and subject), firing or resolved.
alerts_table = sa.Table(
    "spillover_alerts",
    metadata,
    sa.Column("id", sa.String(400), primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("summary", sa.String(512), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("notified_at", sa.DateTime(timezone=True)),
)

#: Named leases: which process does a job that must run once among several ingress replicas (the
#: alert evaluator), and until when; a holder that dies loses it when it lapses.
leases_table = sa.Table(
    "spillover_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("until", sa.Float, nullable=False),
)

#: Quality feedback on a request (``POST /v1/feedback``): a score in [0, 1] (thumbs up 1, down 0),
#: written by the key that made the request; the latest word counts.
feedback_table = sa.Table(
    "spillover_feedback",
    metadata,
    sa.Column("request_id", sa.String(80), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("label", sa.String(128)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

#: Whether a configured experiment splits traffic (the admin API's start and stop); without a
#: row, its config's ``running``.
experiments_table = sa.Table(
    "spillover_experiments",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("running", sa.Boolean, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)
