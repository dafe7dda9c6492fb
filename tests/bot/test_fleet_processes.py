"""Three bot processes (`python -m bot --offline`, each in its own simulated Discord) sharing one
real PostgreSQL: /mem fleet in one shows all three; one stops, and exactly one "instance silent"
alert fires among the survivors; the leader stops, and the other takes over without firing it
again; /mem cleanup scope:fleet is answered by the live one and names the others."""

from __future__ import annotations

import asyncio

import pytest

from polly.enhanced_database import Database
from polly.fleet_tables import fleet_instances
from polly.models import alert_events
from tests.bot.offline_process import Console
from tests.settings import make_settings


def advance_together(consoles: list[Console], minutes: int) -> str:
    """Move every console's simulated clock a minute at a time, so they stay in step; return all
    they printed meanwhile (a last command that prints after the rest marks the end of it)."""
    starts = [len(console.output) for console in consoles]
    for _ in range(minutes):
        for console in consoles:
            console.run(":advance 1m", "Simulated clock now")
    for console in consoles:
        console.run("/mem pool", "Database pool")  # lines are handled in order: what came before is out
    return "".join("".join(console.output[start:]) for console, start in zip(consoles, starts, strict=True))


@pytest.fixture
def shared_url(tmp_path, postgres_url):
    async def empty() -> None:
        db = Database(make_settings(tmp_path, database_url=postgres_url))
        await db.create_tables()
        async with db.transaction() as conn:
            await conn.execute(fleet_instances.delete())
            await conn.execute(alert_events.delete())
        await db.dispose()

    asyncio.run(empty())
    return postgres_url


def test_three_processes_one_fleet(tmp_path, shared_url):
    fleet = {"FLEET_REPLY_SECONDS": "3", "ALERT_REPEAT_MINUTES": "3", "DATABASE_URL": shared_url}
    consoles = [Console(tmp_path, name, INSTANCE_NAME=name, **fleet) for name in ("p1", "p2", "p3")]
    try:
        advance_together(consoles, 1)  # each writes its heartbeat
        fleet = consoles[0].run("/mem fleet", "Totals")
        assert "Fleet: 3 instance(s)" in fleet and all(name in fleet for name in ("p1", "p2", "p3"))

        consoles[2].quit()  # p3 stops
        survivors = consoles[:2]
        said = advance_together(survivors, 4)  # FLEET_SILENT_CHECKS (3) intervals and a bit
        assert said.count("■ 🔴 Instance silent") == 1 and "p3" in said
        leader = next(c for c in survivors if "■ 🔴 Instance silent" in "".join(c.output))
        other = next(c for c in survivors if c is not leader)

        leader.quit()  # the leader stops: the other takes the lock at its next tick
        after = advance_together([other], 4)
        posts = after.split("[#ops")
        fired = [p for p in posts if "■ 🔴 Instance silent" in p]
        assert not [p for p in fired if "p3 (host" in p]  # p3's alert taken over, not fired again
        assert [p for p in fired if f"{leader.name} (host" in p]  # the stopped leader is silent now
        assert [
            p for p in posts if "Still firing: Instance silent" in p and "p3 (host" in p
        ]  # repeated by the new leader

        cleanup = other.run("/mem cleanup scope:fleet", "Fleet cleanup")
        assert "Fleet cleanup: 1 answered" in cleanup and other.name in cleanup
        assert "No answer within 3.0 s" in cleanup and "p3" in cleanup and leader.name in cleanup
    finally:
        for console in consoles:
            if console.child.poll() is None:
                console.child.kill()
