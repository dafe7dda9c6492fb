"""Polly's tables, as SQLAlchemy Core tables on one `metadata`: polls and votes, memory
checkpoints, alert history, runtime settings.

Core, not ORM-mapped classes: Polly only inserts, selects, updates and deletes rows, and the ORM's
instrumentation of the mapped classes cost ~0.45 MiB of the running bot's memory (tracemalloc over
import and mapper configuration), about a sixth of Polly's whole footprint budget. Rows read back
are `Row`s with the columns as attributes (`poll.id`, `poll.message_id`)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = MetaData()


class PollStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    CLOSED = "closed"


polls = Table(
    "polls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("question", Text, nullable=False),
    Column("options", JSON, default=list, nullable=False),
    Column("server_id", BigInteger, index=True, nullable=False),
    Column("channel_id", BigInteger, nullable=False),
    Column("creator_id", BigInteger, nullable=False),
    Column("message_id", BigInteger, nullable=True),
    Column("open_time", DateTime(timezone=True), nullable=True),
    Column("close_time", DateTime(timezone=True), nullable=True),
    Column(
        "status",
        Enum(PollStatus, values_callable=lambda e: [m.value for m in e], native_enum=False),
        default=PollStatus.SCHEDULED,
        index=True,
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), default=utcnow, nullable=False),
)

votes = Table(
    "votes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("poll_id", Integer, ForeignKey("polls.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("option_index", Integer, nullable=False),
    Column("voted_at", DateTime(timezone=True), default=utcnow, nullable=False),
)

# A stored memory sample (and optional tracemalloc summary); automatic and manual ones are kept
# newest-N each.
memory_checkpoints = Table(
    "memory_checkpoints",
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
    "memory_history",
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
    "alert_events",
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
)

# Settings changed at runtime by operators (the alert channel, thresholds), overriding the env.
runtime_settings = Table(
    "runtime_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), default=utcnow, onupdate=utcnow, nullable=False),
)
