"""Three bot processes (`python -m bot --offline`, each in its own simulated Discord) sharing one
real PostgreSQL: /mem fleet in one shows all three; one stops, and exactly one "instance silent"
alert fires among the survivors; the leader stops, and the other takes over without firing it
again; /mem cleanup scope:fleet is answered by the live one and names the others.

Each console's clock is simulated, but heartbeats are timed by the database's clock: a process
is silent once real time has passed (a check interval of 1 s, FLEET_SILENT_CHECKS of 5: 5 s, well
above the 1.4 s a round of commands to two consoles takes), so the survivors keep checking for
that long."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from polly.enhanced_database import Database
from polly.fleet_tables import fleet_instances
from polly.models import alert_events
from tests.bot.offline_process import Console
from tests.settings import make_settings

SILENT_AFTER_S = 5  # MEMORY_CHECK_INTERVAL_SECONDS times FLEET_SILENT_CHECKS, by the database's clock


def advance_together(consoles: list[Console], seconds: int) -> str:
    """Move every console's simulated clock a check (a second) at a time, so they stay in step;
    return all they printed meanwhile (a last command that prints after the rest marks the end)."""
    starts = [len(console.output) for console in consoles]
    for _ in range(seconds):
        for console in consoles:
            console.run(":advance 1s", "Simulated clock now")
    for console in consoles:
        console.run("/mem pool", "Database pool")  # lines are handled in order: what came before is out
    return "".join("".join(console.output[start:]) for console, start in zip(consoles, starts, strict=True))


def keep_beating(consoles: list[Console], real_seconds: float) -> str:
    """Check after check (each a heartbeat) for `real_seconds` of real time: the database's clock
    moves on, and a process that stopped falls silent while these do not."""
    said, until = [], time.monotonic() + real_seconds
    while time.monotonic() < until:
        said.append(advance_together(consoles, 1))
    return "".join(said)


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
    fleet = {
        "FLEET_REPLY_SECONDS": "3",
        "ALERT_REPEAT_MINUTES": "0.1",
        "MEMORY_CHECK_INTERVAL_SECONDS": "1",
        "FLEET_SILENT_CHECKS": str(SILENT_AFTER_S),
        "DATABASE_URL": shared_url,
    }
    consoles = [Console(tmp_path, name, INSTANCE_NAME=name, **fleet) for name in ("p1", "p2", "p3")]
    try:
        advance_together(consoles, 1)  # each writes its heartbeat
        fleet = consoles[0].run("/mem fleet", "Totals")
        assert "Fleet: 3 instance(s)" in fleet and all(name in fleet for name in ("p1", "p2", "p3"))

        consoles[2].quit()  # p3 stops
        survivors = consoles[:2]
        said = keep_beating(survivors, SILENT_AFTER_S + 6)  # then ALERT_FOR_CHECKS (3) checks and more
        assert said.count("■ 🔴 Instance silent") == 1 and "p3" in said
        leader = next(c for c in survivors if "■ 🔴 Instance silent" in "".join(c.output))
        other = next(c for c in survivors if c is not leader)

        leader.quit()  # the leader stops: the other takes the lease at its next tick
        after = keep_beating([other], SILENT_AFTER_S + 8)  # past ALERT_REPEAT_MINUTES (6 s simulated) too
        # Each post: from its "[#ops HH:MM]" to the next line the console or the log writes.
        posts = re.findall(r"\[#ops [^\]]*\] (.*?)(?=\n\[|\n> |\n⏩|\Z)", after, re.S)
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
