"""The DDL of Polly's tables: built by `polly.migrations` for the one transaction that creates or
upgrades them, and dropped after it.

The tables the running bot reads and writes are `polly.models`' (and `polly.fleet_tables`'):
lightweight `table()`/`column()` clauses with the same names and types. SQLAlchemy's full `Table`
and `Column` objects carry what only DDL needs (keys, indexes, constraints) and an event dispatcher
each: kept for the process's life, Polly's four tables cost ~0.14 MiB of Python memory against
~0.03 MiB as clauses (tracemalloc, `python -m benchmarks.footprint_attribution`), and creating them
kept ~0.1 MiB more. `tests/polly/test_schema.py` checks that both describe the same columns.

Columns have no client-side defaults: every statement names its values (a default here would be
applied only by a full `Table`, which the running bot does not have).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text

TABLE_NAMES = ("polly_memory_checkpoints", "polly_memory_history", "polly_alert_events", "polly_runtime_settings")
FLEET_TABLE_NAMES = ("polly_fleet_instances", "polly_fleet_leader", "polly_fleet_cleanup_reports")


def table_names(*, fleet: bool) -> tuple[str, ...]:
    """The names `polly_tables` gives its tables, without building them."""
    return TABLE_NAMES + FLEET_TABLE_NAMES if fleet else TABLE_NAMES


def polly_tables(*, fleet: bool) -> MetaData:
    """Polly's tables, with the fleet's (PostgreSQL, where processes can share the database)."""
    metadata = MetaData()
    # A stored memory sample (and optional tracemalloc summary); automatic and manual ones are kept
    # newest-N each.
    Table(
        "polly_memory_checkpoints",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("label", String(100), unique=True, nullable=False),
        Column("created_at", DateTime(timezone=True), index=True, nullable=False),
        Column("automatic", Boolean, nullable=False),
        Column("sample", JSON, nullable=False),
        # The sample's RSS again, so a chart's markers are read without parsing every sample's JSON.
        Column("rss", BigInteger, nullable=True),
        Column("allocations", JSON, nullable=True),
    )
    # RSS per 5-minute bucket for charts (polly/history.py); a restart inside a bucket writes it twice.
    Table(
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
    Table(
        "polly_alert_events",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("at", DateTime(timezone=True), index=True, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("rule", String(64), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("value", Float, nullable=False),
        Column("threshold", Float, nullable=False),
        Column("message", Text, nullable=False),
        Column("delivered", Boolean, index=True, nullable=False),
        Column("since", DateTime(timezone=True), nullable=True),  # when the alert first fired
        Column("instance", String(64), nullable=True),  # the process that raised it (INSTANCE_NAME)
        # When a post of it was last attempted and not known to have failed (schema version 2): set
        # before the send, so a restart can tell an interrupted post from one never tried.
        Column("attempted_at", DateTime(timezone=True), nullable=True),
    )
    # Settings changed at runtime by operators (the alert channel, thresholds), overriding the env.
    Table(
        "polly_runtime_settings",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    if fleet:
        _fleet_tables(metadata)
    return metadata


def _fleet_tables(metadata: MetaData) -> None:
    # One heartbeat row per live process of the bot (PostgreSQL fleets, polly/fleet.py).
    Table(
        "polly_fleet_instances",
        metadata,
        Column("instance", String(64), primary_key=True),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("shards", String(200), nullable=False),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("last_seen", DateTime(timezone=True), index=True, nullable=False),
        Column("rss", BigInteger, nullable=False),
        Column("limit_bytes", BigInteger, nullable=False),
        Column("percent", Float, nullable=False),
        Column("trend", Float, nullable=True),
        Column("alerts_firing", Integer, nullable=False),
        Column("version", String(32), nullable=False),
    )
    # Who leads the fleet (evaluates the fleet rules), on a lease in the database's own time: one row.
    Table(
        "polly_fleet_leader",
        metadata,
        Column("id", Integer, primary_key=True),  # always 1
        Column("instance", String(64), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )
    # Each process's answer to a fleet-wide cleanup request (polly/fleet_cleanup.py); an hour kept.
    Table(
        "polly_fleet_cleanup_reports",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("request_id", String(32), index=True, nullable=False),
        Column("instance", String(64), nullable=False),
        Column("removed", Integer, nullable=False),
        Column("rss_before", BigInteger, nullable=True),
        Column("rss_after", BigInteger, nullable=True),
        Column("error", String(500), nullable=True),
        Column("at", DateTime(timezone=True), index=True, nullable=False),
    )
