"""The fleet's tables as the running bot reads and writes them (clauses, like `polly.models`; their
DDL is `polly.schema`'s), in their own module: only a bot on PostgreSQL (where processes can share
the database) imports it, so a SQLite bot builds none of it (part of Polly's 3 MiB footprint
budget)."""

from __future__ import annotations

from sqlalchemy import BigInteger, DateTime, Float, Integer, String, column, table

fleet_instances = table(
    "polly_fleet_instances",
    column("instance", String(64)),
    column("host", String(255)),
    column("pid", Integer),
    column("shards", String(200)),
    column("started_at", DateTime(timezone=True)),
    column("last_seen", DateTime(timezone=True)),
    column("rss", BigInteger),
    column("limit_bytes", BigInteger),
    column("percent", Float),
    column("trend", Float),
    column("alerts_firing", Integer),
    column("version", String(32)),
)

fleet_leader = table(
    "polly_fleet_leader",
    column("id", Integer),
    column("instance", String(64)),
    column("expires_at", DateTime(timezone=True)),
)

fleet_cleanup_reports = table(
    "polly_fleet_cleanup_reports",
    column("id", Integer),
    column("request_id", String(32)),
    column("instance", String(64)),
    column("removed", Integer),
    column("rss_before", BigInteger),
    column("rss_after", BigInteger),
    column("error", String(500)),
    column("at", DateTime(timezone=True)),
)
