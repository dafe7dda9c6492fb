"""Fleet rules on a real PostgreSQL: processes share one database, one of them leads (an advisory
lock), exactly one "instance silent" alert fires among the survivors, another takes over when the
leader dies, and nothing fires twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from polly.alert_engine import AlertEngine
from polly.alert_store import FLEET_OWNER, AlertStore
from polly.alerts import Rule, Thresholds
from polly.enhanced_database import Database
from polly.fleet import FleetStore, heartbeat
from polly.fleet_tables import fleet_instances
from polly.memory_optimizer import MemoryMonitor
from polly.memory_utils import StructureRegistry
from polly.models import alert_events
from polly.monitor_cycle import MonitorCycle
from tests.clocks import START, FakeClock
from tests.settings import make_settings


class Process:
    """One bot process's monitor cycle on the shared database (its own connections and engine)."""

    def __init__(self, tmp_path, url: str, name: str, clock: FakeClock, **settings: object) -> None:
        settings = {"memory_check_interval_seconds": 60, **settings}
        self.settings = make_settings(tmp_path, database_url=url, instance_name=name, **settings)
        self.db = Database(self.settings)
        structures = StructureRegistry()
        self.store = AlertStore(self.db, 500, name)
        monitor = MemoryMonitor(self.settings, self.db, structures=structures, clock=clock)
        self.cycle = MonitorCycle(self.settings, monitor, AlertEngine(Thresholds.default()), self.store, structures)

    async def silent_transitions(self) -> list[tuple[str, str]]:
        result = await self.cycle.tick()
        return [
            (e.transition.kind.value, e.transition.subject)
            for e in result.events
            if e.transition.rule is Rule.INSTANCE_SILENT
        ]

    async def die(self) -> None:
        await self.db.dispose()  # its connections close: the advisory lock goes with them
        assert self.cycle.fleet is not None
        await self.cycle.fleet.leader.release()


@pytest.fixture
async def fleet_of_two(tmp_path, postgres_url):
    clock = FakeClock()
    first, second = Process(tmp_path, postgres_url, "eu-1", clock), Process(tmp_path, postgres_url, "us-1", clock)
    await first.db.create_tables()
    async with first.db.transaction() as conn:
        await conn.execute(fleet_instances.delete())
        await conn.execute(alert_events.delete())
    yield clock, first, second
    for process in (first, second):
        if process.cycle.fleet is not None:
            await process.cycle.fleet.leader.release()
        await process.db.dispose()


async def fired_events(db: Database) -> list[tuple[str, str, str]]:
    async with db.transaction() as conn:
        rows = await conn.execute(
            select(alert_events.c.kind, alert_events.c.subject, alert_events.c.instance).where(
                alert_events.c.rule == Rule.INSTANCE_SILENT.value
            )
        )
        return [tuple(r) for r in rows]


async def test_one_silent_instance_fires_once_and_a_new_leader_takes_over(fleet_of_two):
    clock, first, second = fleet_of_two
    dead = FleetStore(first.db, 24, clock)
    now = clock()
    await dead.beat(heartbeat("ap-1", [], now - timedelta(hours=1), now - timedelta(seconds=600), 1, 2, None, 0))

    seen = await first.silent_transitions() + await second.silent_transitions()
    assert seen == [("fired", "ap-1")]  # one alert for the fleet, not one per surviving process
    leader, follower = (first, second) if first.cycle.fleet.leading else (second, first)  # type: ignore[union-attr]
    assert not follower.cycle.fleet.leading  # type: ignore[union-attr]

    clock.advance(60)
    assert await follower.silent_transitions() == []
    await leader.die()
    clock.advance(60)
    assert await follower.silent_transitions() == []  # takes the lead and the firing alert: no second "fired"
    assert follower.cycle.fleet.leading  # type: ignore[union-attr]

    await dead.beat(heartbeat("ap-1", [], clock() - timedelta(hours=1), clock(), 1, 2, None, 0))
    clock.advance(60)
    assert await follower.silent_transitions() == [("resolved", "ap-1")]
    assert sorted(await fired_events(follower.db)) == [
        ("fired", "ap-1", FLEET_OWNER),
        ("resolved", "ap-1", FLEET_OWNER),
    ]
    assert [e.subject for e in await follower.store.undelivered() if e.instance == FLEET_OWNER] == ["ap-1", "ap-1"]


async def test_a_hung_leader_loses_the_lead_when_its_lease_runs_out(tmp_path, postgres_url):
    """A leader stopped with SIGSTOP keeps its connections open; it used to keep its advisory lock
    with them, and nobody said it went silent. The lease runs on the database's clock instead."""
    import asyncio

    from polly.fleet import FleetLeader
    from polly.fleet_tables import fleet_leader

    db = Database(make_settings(tmp_path, database_url=postgres_url))
    await db.create_tables()
    async with db.transaction() as conn:
        await conn.execute(fleet_leader.delete())
    hung, other = FleetLeader(db, "hung-1", lease_s=1.0), FleetLeader(db, "other-1", lease_s=1.0)
    try:
        assert await hung.is_leader() and not await other.is_leader()
        assert await hung.is_leader()  # renewing keeps it
        await asyncio.sleep(1.5)  # the hung one renews nothing: its lease runs out (real time: the database's)
        assert await other.is_leader() and not await hung.is_leader()
        await other.release()  # a clean stop hands it over at once
        assert await hung.is_leader()
    finally:
        await hung.release()
        await db.dispose()


async def test_a_process_whose_clock_runs_ahead_neither_erases_the_others_nor_escapes_silence(tmp_path, postgres_url):
    """Heartbeats are timed by the database's clock. A process two days ahead used to delete every
    other row as forgotten (FLEET_FORGET_HOURS behind its own now) and, once dead, stayed "seen in
    the future": never silent."""
    quick = {"memory_check_interval_seconds": 1, "fleet_silent_checks": 1}
    normal = Process(tmp_path, postgres_url, "eu-1", FakeClock(), **quick)
    ahead = Process(tmp_path, postgres_url, "ahead-1", FakeClock(START + timedelta(days=2)), **quick)
    await normal.db.create_tables()
    async with normal.db.transaction() as conn:
        await conn.execute(fleet_instances.delete())
        await conn.execute(alert_events.delete())
    try:
        assert await normal.silent_transitions() == [] and await ahead.silent_transitions() == []
        for process in (normal, ahead):  # both see both, whatever their clocks say
            assert sorted(m.instance for m in await process.cycle.fleet_members()) == ["ahead-1", "eu-1"]
        assert normal.cycle.fleet.leading  # type: ignore[union-attr]
        await ahead.die()
        await asyncio.sleep(1.5)  # past FLEET_SILENT_CHECKS intervals, by the database's clock
        assert await normal.silent_transitions() == [("fired", "ahead-1")]
    finally:
        for process in (normal, ahead):
            if process.cycle.fleet is not None:
                await process.cycle.fleet.leader.release()
            await process.db.dispose()
