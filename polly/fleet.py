"""The fleet: every process of one bot, seen through the database they share.

Each process upserts one heartbeat row per monitor tick (instance, host, pid, shards, memory,
trend, alerts): bounded by construction, one row per live process, and rows silent for
FLEET_FORGET_HOURS are deleted. Only on PostgreSQL: a SQLite database belongs to one process,
which is its own fleet (its row is built from the live sample, and nothing is written).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from polly.enhanced_database import Database
from polly.models import fleet_instances as table

VERSION = "0.1.0"  # pyproject.toml's; importlib.metadata would cost the bot an import for one string


@dataclass(frozen=True)
class Heartbeat:
    instance: str
    host: str
    pid: int
    shards: str  # "1,3", or "" when not sharded
    started_at: datetime
    last_seen: datetime
    rss: int
    limit: int
    percent: float
    trend_mib_per_hour: float | None
    alerts_firing: int
    version: str = VERSION

    def silent_for(self, now: datetime) -> float:
        return max(0.0, (now - self.last_seen).total_seconds())


def heartbeat(
    instance: str,
    shards: list[int],
    started_at: datetime,
    now: datetime,
    rss: int,
    limit: int,
    trend: float | None,
    alerts_firing: int,
) -> Heartbeat:
    """This process's heartbeat now."""
    return Heartbeat(
        instance,
        socket.gethostname(),
        os.getpid(),
        ",".join(map(str, shards)),
        started_at,
        now,
        rss,
        limit,
        100.0 * rss / limit if limit else 0.0,
        trend,
        alerts_firing,
    )


class FleetStore:
    """Heartbeats in the `fleet_instances` table (PostgreSQL)."""

    def __init__(self, db: Database, forget_hours: float) -> None:
        self.db = db
        self.forget = timedelta(hours=forget_hours)

    async def beat(self, beat: Heartbeat) -> None:
        """Upsert this process's row; delete rows silent for longer than FLEET_FORGET_HOURS."""
        from sqlalchemy.dialects.postgresql import insert  # PostgreSQL only: loaded with the first beat

        values = {
            "instance": beat.instance,
            "host": beat.host[:255],
            "pid": beat.pid,
            "shards": beat.shards[:200],
            "started_at": beat.started_at,
            "last_seen": beat.last_seen,
            "rss": beat.rss,
            "limit_bytes": beat.limit,
            "percent": beat.percent,
            "trend": beat.trend_mib_per_hour,
            "alerts_firing": beat.alerts_firing,
            "version": beat.version,
        }
        upsert = insert(table).values(values)
        upsert = upsert.on_conflict_do_update(index_elements=[table.c.instance], set_=values)
        async with self.db.transaction() as conn:
            await conn.execute(upsert)
            await conn.execute(delete(table).where(table.c.last_seen < beat.last_seen - self.forget))

    async def members(self) -> list[Heartbeat]:
        async with self.db.transaction() as conn:
            rows = await conn.execute(select(table))
            return [
                Heartbeat(
                    r.instance,
                    r.host,
                    r.pid,
                    r.shards,
                    _aware(r.started_at),
                    _aware(r.last_seen),
                    r.rss,
                    r.limit_bytes,
                    r.percent,
                    r.trend,
                    r.alerts_firing,
                    r.version,
                )
                for r in rows
            ]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
