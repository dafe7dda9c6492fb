"""The fleet's tables, on Polly's `metadata` but in their own module: only a bot on PostgreSQL
(where processes can share the database) imports it, so a SQLite bot builds neither the Table
objects nor their DDL (part of Polly's 3 MiB footprint budget)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, Integer, String, Table

from polly.models import metadata

# One heartbeat row per live process of the bot (PostgreSQL fleets, polly/fleet.py).
fleet_instances = Table(
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
fleet_leader = Table(
    "polly_fleet_leader",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("instance", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Each process's answer to a fleet-wide cleanup request (polly/fleet_cleanup.py); an hour kept.
fleet_cleanup_reports = Table(
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
