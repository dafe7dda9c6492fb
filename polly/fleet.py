"""The fleet: every process of one bot, seen through the database they share.

Fleet rules (an instance gone silent) are evaluated by one process at a time, the one holding the
leader's lease (a row renewed at each tick, timed by the database's clock); when that process stops
renewing it (gone, hung, stopped), the lease expires after two check intervals and another process
takes it at its next tick. Their alert events belong to FLEET_OWNER, so whichever process leads
delivers them.

Each process upserts one heartbeat row per monitor tick (instance, host, pid, shards, memory,
trend, alerts): bounded by construction, one row per live process, and rows silent for
FLEET_FORGET_HOURS are deleted. Only on PostgreSQL: a SQLite database belongs to one process,
which is its own fleet (its row is built from the live sample, and nothing is written).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Interval, delete, func, literal, select

from polly.alerts import Condition, Rule
from polly.clock import now as clock_now
from polly.config import Settings
from polly.enhanced_database import Database
from polly.fleet_tables import fleet_instances as table
from polly.fleet_tables import fleet_leader as leader_table
from polly.formatting import format_duration
from polly.records import record

if TYPE_CHECKING:
    from polly.alert_engine import AlertEngine
    from polly.alert_store import AlertStore

log = logging.getLogger(__name__)

# "polly": the advisory lock key the fleet's leader held up to schema version 2 (a lease since);
# kept so that schema upgrades never wait on a leader of an older version (polly.migrations).
LEADER_LOCK = 0x706F6C6C79

VERSION = "0.1.0"  # pyproject.toml's; importlib.metadata would cost the bot an import for one string


@record
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def live_twin(members: list[Heartbeat], instance: str, now: datetime, silent_after_s: float) -> Heartbeat | None:
    """Another live process already heartbeating under `instance`: two would merge into one row and
    take each other's alerts. Not a twin: this very process (a reload), a process of this host that
    no longer exists (this one's predecessor), or one silent for longer than `silent_after_s`."""
    host, pid = socket.gethostname(), os.getpid()
    for member in members:
        if member.instance != instance or member.silent_for(now) > silent_after_s:
            continue
        if (member.host, member.pid) == (host, pid) or (member.host == host and not _alive(member.pid)):
            continue
        return member
    return None


class FleetStore:
    """Heartbeats in the `fleet_instances` table (PostgreSQL), timed by the database's clock.

    A row's `last_seen` is the database's `now()` when the beat was written, so a process whose
    clock runs ahead neither deletes the others' rows as forgotten nor, once dead, stays "seen in
    the future" and never silent. Each process reads the rows back in its own clock's terms (a row
    written a minute ago, by the database's clock, was seen a minute before this process's now),
    so silence is measured by one clock whatever the processes' clocks say."""

    def __init__(self, db: Database, forget_hours: float, clock: Callable[[], datetime] = clock_now) -> None:
        self.db = db
        self.forget_s = forget_hours * 3600
        self.clock = clock

    async def beat(self, beat: Heartbeat) -> None:
        """Upsert this process's row; delete rows silent for longer than FLEET_FORGET_HOURS. A beat
        whose `last_seen` is behind this process's clock is stored that far behind the database's."""
        from sqlalchemy.dialects.postgresql import insert  # PostgreSQL only: loaded with the first beat

        behind = max(0.0, (self.clock() - beat.last_seen).total_seconds())
        values = {
            "instance": beat.instance,
            "host": beat.host[:255],
            "pid": beat.pid,
            "shards": beat.shards[:200],
            "started_at": beat.started_at,
            "last_seen": func.now() - _seconds(behind),
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
            await conn.execute(delete(table).where(table.c.last_seen < func.now() - _seconds(self.forget_s)))

    async def members(self) -> list[Heartbeat]:
        """Every row, its `last_seen` in this process's clock's terms (see the class)."""
        async with self.db.transaction() as conn:
            # now() is the transaction's start: the same instant for both statements.
            database_now: datetime = _aware((await conn.execute(select(func.now()))).scalar_one())
            rows = await conn.execute(select(table))
            here = self.clock()
            return [
                Heartbeat(
                    r.instance,
                    r.host,
                    r.pid,
                    r.shards,
                    _aware(r.started_at),
                    here - (database_now - _aware(r.last_seen)),
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


def _seconds(seconds: float) -> Any:
    """A PostgreSQL interval of `seconds` (a bound value: the planner can use last_seen's index)."""
    return literal(timedelta(seconds=seconds), Interval())


def silent_conditions(members: list[Heartbeat], now: datetime, silent_after_s: float, me: str) -> list[Condition]:
    """The instance-silent rule for every other process: active after `silent_after_s` without a
    heartbeat, clear as soon as it beats again; a row forgotten (deleted) resolves it."""
    out = []
    for member in members:
        if member.instance == me:
            continue
        quiet = member.silent_for(now)
        active = quiet > silent_after_s
        detail = (
            f"{member.instance} (host {member.host}, pid {member.pid}) sent no heartbeat for {format_duration(quiet)}"
            if active
            else f"{member.instance} beats again"
        )
        out.append(
            Condition(Rule.INSTANCE_SILENT, member.instance, quiet, silent_after_s, active, not active, detail, 1)
        )
    return out


class FleetLeader:
    """Whether this process evaluates the fleet rules: it does while it holds the lease.

    The lease is one row renewed at every tick, timed by the database's clock (`now()`), so neither
    a process's own clock nor a connection it keeps open can hold it: a leader that stops renewing
    (hung, stopped with SIGSTOP, cut off) loses it after `lease_s`, and the next process to tick
    takes over. An advisory lock could not do that: it lives as long as the connection does."""

    def __init__(self, db: Database, instance: str, lease_s: float) -> None:
        self.db = db
        self.instance = instance
        self.lease_s = lease_s

    async def is_leader(self) -> bool:
        """Take or renew the lease; whether this process holds it now."""
        from sqlalchemy.dialects.postgresql import insert  # PostgreSQL only

        expires = func.now() + _seconds(self.lease_s)
        take = (
            insert(leader_table)
            .values(id=1, instance=self.instance, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[leader_table.c.id],
                set_={"instance": self.instance, "expires_at": expires},
                where=(leader_table.c.instance == self.instance) | (leader_table.c.expires_at < func.now()),
            )
            .returning(leader_table.c.instance)
        )
        async with self.db.transaction() as conn:
            return (await conn.scalar(take)) is not None

    async def release(self) -> None:
        """Give the lease up at once (a clean stop): the next process to tick takes over."""
        async with self.db.transaction() as conn:
            await conn.execute(delete(leader_table).where(leader_table.c.instance == self.instance))


class Fleet:
    """This process's part in the fleet: its heartbeat row, and the fleet rules while it leads."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        engine: AlertEngine,
        alerts: AlertStore | None,
        clock: Callable[[], datetime] = clock_now,
    ) -> None:
        self.settings = settings
        self.store = FleetStore(db, settings.fleet_forget_hours, clock)
        # The lease lasts two check intervals: a leader that misses two ticks is replaced.
        self.leader = FleetLeader(db, settings.instance(), 2 * settings.memory_check_interval_seconds)
        self.engine = engine
        self.alerts = alerts
        self.leading = False

    async def conditions(self, now: datetime) -> list[Condition]:
        """The fleet rules' conditions when this process leads, else none."""
        leading = await self.leader.is_leader()
        if leading != self.leading:
            await self._lead(leading)
        if not leading:
            return []
        silent_after = self.settings.fleet_silent_checks * self.settings.memory_check_interval_seconds
        return silent_conditions(await self.store.members(), now, silent_after, self.settings.instance())

    async def _lead(self, leading: bool) -> None:
        self.leading = leading
        log.info("This process %s the fleet's leader", "is now" if leading else "is no longer")
        if self.alerts is not None:
            self.alerts.include_fleet = leading
        if not leading:
            self.engine.forget(Rule.INSTANCE_SILENT)
        elif self.alerts is not None:  # take over what the previous leader had firing
            self.engine.restore([e for e in await self.alerts.firing() if e.rule == Rule.INSTANCE_SILENT])
