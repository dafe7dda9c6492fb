"""Polly's tables, as SQLAlchemy Core tables on one `metadata`: memory checkpoints, RSS history,
alert events, runtime settings (and, on PostgreSQL, the fleet's, in `polly.fleet_tables`).

Every table is named `polly_*`, so Polly can share a host bot's database without touching its
tables; `polly.migrations` creates and upgrades them (and only them).

Core, not ORM-mapped classes: Polly only inserts, selects, updates and deletes rows, and the ORM's
instrumentation of the mapped classes cost ~0.45 MiB of the running bot's memory (tracemalloc over
import and mapper configuration), about a sixth of Polly's whole footprint budget. Rows read back
are `Row`s with the columns as attributes (`poll.id`, `poll.message_id`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from polly import clock


def utcnow() -> datetime:
    return clock.now()


metadata = MetaData()


# A stored memory sample (and optional tracemalloc summary); automatic and manual ones are kept
# newest-N each.
memory_checkpoints = Table(
    "polly_memory_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label", String(100), unique=True, nullable=False),
    Column("created_at", DateTime(timezone=True), default=utcnow, index=True, nullable=False),
    Column("automatic", Boolean, default=False, nullable=False),
    Column("sample", JSON, nullable=False),
    # The sample's RSS again, so a chart's markers are read without parsing every sample's JSON.
    Column("rss", BigInteger, nullable=True),
    Column("allocations", JSON, nullable=True),
)

# RSS per 5-minute bucket for charts (polly/history.py); a restart inside a bucket writes it twice.
memory_history = Table(
    "polly_memory_history",
    metadata,
    Column("id", Integer, primary_key=True),
    # Unix seconds, not DateTime: reading a week (2,016 rows) parses no timestamps on the event loop.
    Column("bucket_start", BigInteger, index=True, nullable=False),
    Column("rss_min", BigInteger, nullable=False),
    Column("rss_mean", BigInteger, nullable=False),
    Column("rss_max", BigInteger, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("limit_bytes", BigInteger, nullable=False),
    Column("cleanups", Integer, nullable=False),
    Column("manual_cleanups", Integer, nullable=False),
)

# One alert transition (fired, repeated, resolved); also the delivery queue (delivered=False).
alert_events = Table(
    "polly_alert_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), default=utcnow, index=True, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("delivered", Boolean, default=False, index=True, nullable=False),
    Column("since", DateTime(timezone=True), nullable=True),  # when the alert first fired
    Column("instance", String(64), nullable=True),  # the process that raised it (INSTANCE_NAME)
    # When a post of it was last attempted and not known to have failed (schema version 2): set
    # before the send, so a restart can tell an interrupted post from one never tried.
    Column("attempted_at", DateTime(timezone=True), nullable=True),
)

# Settings changed at runtime by operators (the alert channel, thresholds), overriding the env.
runtime_settings = Table(
    "polly_runtime_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), default=utcnow, onupdate=utcnow, nullable=False),
)
