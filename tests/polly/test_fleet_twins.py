"""One name, one process: a second live process with an INSTANCE_NAME already heartbeating on the
shared PostgreSQL is refused at start (two used to merge into one row and take each other's alerts)."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest

from polly.enhanced_database import Database
from polly.fleet import FleetStore, heartbeat
from polly.fleet_tables import fleet_instances
from polly.memory_layer import MemoryLayer
from polly.registry import StructureRegistry
from polly.startup_errors import StartupError
from tests.clocks import FakeClock
from tests.settings import make_settings


@pytest.fixture
async def settings(tmp_path, postgres_url):
    settings = make_settings(tmp_path, database_url=postgres_url, instance_name="twin-1")
    db = Database(settings)
    await db.create_tables()
    async with db.transaction() as conn:
        await conn.execute(fleet_instances.delete())
    await db.dispose()
    return settings


async def beat_as(settings, clock, *, host: str, pid: int, silent_s: float = 0) -> None:
    db = Database(settings)
    try:
        now = clock.now
        beat = heartbeat("twin-1", [], now, now, 100, 1000, None, 0)
        seen = now.timestamp() - silent_s
        beat = dataclasses.replace(beat, host=host, pid=pid, last_seen=now.fromtimestamp(seen, now.tzinfo))
        await FleetStore(db, forget_hours=24, clock=clock).beat(beat)
    finally:
        await db.dispose()


async def open_layer(settings, clock) -> MemoryLayer:
    layer = MemoryLayer(settings, clock=clock, structures=StructureRegistry())
    try:
        await layer.open()
    except BaseException:
        await layer.close()
        raise
    return layer


async def test_a_live_process_elsewhere_with_the_same_name_is_refused_in_one_line(settings):
    clock = FakeClock()
    await beat_as(settings, clock, host="another-host", pid=4242)
    with pytest.raises(
        StartupError, match=r"INSTANCE_NAME='twin-1' is already used by a live process \(host another-host, pid 4242"
    ):
        await open_layer(settings, clock)


async def test_a_dead_predecessor_on_this_host_or_a_silent_process_is_not_a_twin(settings):
    clock = FakeClock()
    gone = os.getpid() + 10_000_000  # no such process
    await beat_as(settings, clock, host=socket.gethostname(), pid=gone)
    layer = await open_layer(settings, clock)  # a restart after a crash: its own old row
    await layer.close()
    await beat_as(settings, clock, host="another-host", pid=4242, silent_s=3600)
    layer = await open_layer(settings, clock)  # the other one stopped beating an hour ago
    await layer.close()
