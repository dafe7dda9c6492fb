"""Polly's tables as the running bot reads and writes them: memory checkpoints, RSS history, alert
events, runtime settings (and, on PostgreSQL, the fleet's, in `polly.fleet_tables`).

Every table is named `polly_*`, so Polly can share a host bot's database without touching its
tables; `polly.migrations` creates and upgrades them (and only them) from `polly.schema`'s DDL.

Lightweight `table()`/`column()` clauses, not `Table` objects: Polly only inserts, selects, updates
and deletes rows, and a full `Table` keeps an event dispatcher and DDL details for every column
(~0.1 MiB more for these four; see `polly.schema`). Columns keep their types, so values are
converted as before (JSON, timezone-aware times). They have no defaults: every insert names its
values. Rows read back are `Row`s with the columns as attributes."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text, column, table

memory_checkpoints = table(
    "polly_memory_checkpoints",
    column("id", Integer),
    column("label", String(100)),
    column("created_at", DateTime(timezone=True)),
    column("automatic", Boolean),
    column("sample", JSON),
    column("rss", BigInteger),
    column("allocations", JSON),
)

memory_history = table(
    "polly_memory_history",
    column("id", Integer),
    column("bucket_start", BigInteger),
    column("rss_min", BigInteger),
    column("rss_mean", BigInteger),
    column("rss_max", BigInteger),
    column("samples", Integer),
    column("limit_bytes", BigInteger),
    column("cleanups", Integer),
    column("manual_cleanups", Integer),
)

alert_events = table(
    "polly_alert_events",
    column("id", Integer),
    column("at", DateTime(timezone=True)),
    column("kind", String(16)),
    column("rule", String(64)),
    column("subject", String(200)),
    column("value", Float),
    column("threshold", Float),
    column("message", Text),
    column("delivered", Boolean),
    column("since", DateTime(timezone=True)),
    column("instance", String(64)),
    column("attempted_at", DateTime(timezone=True)),
)

runtime_settings = table(
    "polly_runtime_settings",
    column("key", String(64)),
    column("value", Text),
    column("updated_at", DateTime(timezone=True)),
)
