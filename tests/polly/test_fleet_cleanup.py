"""Fleet cleanup requests on a real PostgreSQL: odd payloads are ignored in one line, and a listener
whose connection the server dropped listens again."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from sqlalchemy import func, select, text

from polly.enhanced_database import Database
from polly.fleet_cleanup import CHANNEL, FleetCleanup, parse_request
from polly.fleet_tables import fleet_cleanup_reports
from polly.gc_tools import cleanup_background_tasks_memory
from polly.registry import StructureRegistry
from tests.settings import make_settings


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "{}",
        "[1, 2]",
        '{"id": 1, "who": "x", "from": "y"}',
        json.dumps({"id": "x" * 8000, "who": "a", "from": "b"}),
    ],
)
def test_a_malformed_request_is_ignored_in_one_line(payload, caplog):
    assert parse_request(payload) is None
    assert "Ignoring a malformed fleet cleanup request" in caplog.text and "Traceback" not in caplog.text


@pytest.fixture
async def fleet_db(tmp_path, postgres_url):
    db = Database(make_settings(tmp_path, database_url=postgres_url, instance_name="eu-1"))
    await db.create_tables()
    async with db.transaction() as conn:
        await conn.execute(fleet_cleanup_reports.delete())
    yield db
    await db.dispose()


@pytest.fixture
async def listener(fleet_db):
    structures = StructureRegistry()

    async def clean(_who: str):
        return cleanup_background_tasks_memory(target_registry=structures, gc_generation=0, now=0)

    cleanup = FleetCleanup(fleet_db, "eu-1", clean)
    await cleanup.start()
    yield cleanup
    await cleanup.stop()


async def reports(db: Database) -> int:
    async with db.transaction() as conn:
        return await conn.scalar(select(func.count()).select_from(fleet_cleanup_reports)) or 0


async def test_odd_notifications_log_one_line_and_a_good_one_is_still_answered(fleet_db, listener, caplog):
    caplog.set_level(logging.WARNING)
    async with fleet_db.transaction() as conn:
        for payload in ("not json", "{}", "[]", "x" * 7000):
            await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})
    await asyncio.sleep(0.5)
    assert await reports(fleet_db) == 0
    assert caplog.text.count("Ignoring a malformed fleet cleanup request") == 4 and "Traceback" not in caplog.text
    answers, missing = await listener.ask("ops", ["eu-1"], wait_s=10)
    assert [a.instance for a in answers] == ["eu-1"] and missing == []


async def test_a_listener_whose_connection_the_server_dropped_listens_again(fleet_db, listener):
    """What a PostgreSQL restart does to the LISTEN connection: the server ends it."""
    async with fleet_db.transaction() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
        )
    for _ in range(100):  # asyncpg notices the closed socket on its own, in real time
        if not listener.listening():
            break
        await asyncio.sleep(0.05)
    assert not listener.listening()
    await listener.ensure_listening()  # what each monitor tick does
    assert listener.listening() and listener.reconnects == 1
    answers, missing = await listener.ask("ops", ["eu-1"], wait_s=10)
    assert [a.instance for a in answers] == ["eu-1"] and missing == []
