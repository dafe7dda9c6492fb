"""Polly's schema migrations: its own `polly_*` tables only, an upgrade from 0.1's unprefixed tables,
a host's tables left alone, once per database even when processes start together."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from polly import migrations
from polly.enhanced_database import Database
from polly.models import alert_events, memory_checkpoints
from polly.schema import polly_tables
from tests.settings import make_settings

ROW = {"label": "before-upgrade", "automatic": False, "sample": {"rss": 1}}


def legacy_metadata(without: tuple[str, ...] = ()) -> MetaData:
    """Polly 0.1's tables: today's columns under the unprefixed names, memory_checkpoints without the
    `rss` column an earlier version added later."""
    legacy, metadata = MetaData(), polly_tables(fleet=False)
    for old, new in migrations.LEGACY_NAMES.items():
        if new in metadata.tables and old not in without:
            metadata.tables[new].to_metadata(legacy, name=old)
    legacy.tables["memory_checkpoints"]._columns.remove(legacy.tables["memory_checkpoints"].c.rss)
    return legacy


def host_metadata() -> MetaData:
    """A host bot's own tables: a `polls` table, and an `alert_events` table that is not Polly's."""
    host = MetaData()
    Table("polls", host, Column("id", Integer, primary_key=True), Column("title", String(50)))
    Table("alert_events", host, Column("id", Integer, primary_key=True), Column("text", String(50)))
    return host


async def table_names(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request, tmp_path):
    """An empty database of each kind (PostgreSQL: a new database, dropped afterwards)."""
    if request.param == "sqlite":
        db = Database(make_settings(tmp_path))
        yield db
        await db.dispose()
        return
    url = make_url(request.getfixturevalue("postgres_url"))
    name = f"polly_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(make_settings(tmp_path, database_url=url.set(database=name).render_as_string(hide_password=False)))
    yield db
    await db.dispose()
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


async def test_a_new_database_gets_only_polly_tables_and_the_latest_version(empty_database):
    await empty_database.create_tables()
    names = await table_names(empty_database)
    assert names and all(name.startswith("polly_") for name in names)
    assert names == set(migrations.table_names()) & names >= {"polly_schema_version", "polly_memory_checkpoints"}
    async with empty_database.engine.connect() as conn:
        assert await conn.run_sync(migrations.current_version) == migrations.LATEST_VERSION


async def test_an_upgrade_from_0_1_adopts_pollys_tables_keeps_their_rows_and_leaves_the_hosts_alone(empty_database):
    db = empty_database
    # The host has an alert_events table of its own, so this 0.1 database had none of Polly's by that name.
    legacy = legacy_metadata(without=("alert_events",))
    async with db.engine.begin() as conn:
        await conn.run_sync(legacy.create_all)
        await conn.run_sync(host_metadata().create_all)
        await conn.execute(insert(legacy.tables["memory_checkpoints"]).values(**ROW, created_at=datetime.now(UTC)))
        await conn.execute(text("INSERT INTO polls (id, title) VALUES (1, 'host poll')"))
        await conn.execute(text("INSERT INTO alert_events (id, text) VALUES (7, 'the host''s own')"))

    await db.create_tables()
    names = await table_names(db)
    # Polly's 0.1 tables are renamed; the host's alert_events (other columns) and polls stay as they were.
    assert {"memory_checkpoints", "memory_history", "runtime_settings"}.isdisjoint(names)
    assert {"polls", "alert_events", "polly_alert_events", "polly_memory_checkpoints"} <= names
    async with db.engine.connect() as conn:
        labels = list(await conn.scalars(select(memory_checkpoints.c.label)))
        assert labels == ["before-upgrade"]
        assert await conn.scalar(select(memory_checkpoints.c.rss)) is None  # the column an upgrade added
        assert list(await conn.execute(text("SELECT id, text FROM alert_events"))) == [(7, "the host's own")]
        assert list(await conn.execute(text("SELECT id, title FROM polls"))) == [(1, "host poll")]
        host_columns = {c["name"] for c in await conn.run_sync(lambda c: inspect(c).get_columns("alert_events"))}
        assert host_columns == {"id", "text"}
        assert await conn.scalar(select(alert_events.c.id)) is None  # Polly's own, new and empty


async def test_the_upgrade_runs_once(empty_database, caplog):
    await empty_database.create_tables()
    caplog.clear()
    await empty_database.create_tables()
    assert not [r for r in caplog.records if "applying version" in r.getMessage()]


async def test_processes_starting_together_on_an_empty_postgresql_all_start(tmp_path, postgres_url):
    """Processes' first start on one empty database: the advisory lock lets one create the tables,
    the host's own (Polly's bot's polls) too: PostgreSQL's CREATE TABLE is not safe against itself
    (a fleet of three in CI: "relation "polls" already exists")."""
    url = make_url(postgres_url)
    name = f"polly_race_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    target = url.set(database=name).render_as_string(hide_password=False)
    databases = [Database(make_settings(tmp_path, database_url=target)) for _ in range(6)]
    try:
        await asyncio.gather(*(db.create_tables() for db in databases))
        # Then the host's tables, all at once (after Polly's, whose lock staggers the processes).
        await asyncio.gather(*(db.open_tables(host_metadata()) for db in databases))
        async with databases[0].engine.connect() as conn:
            assert await conn.run_sync(migrations.current_version) == migrations.LATEST_VERSION
        assert {"polls", "alert_events"} <= await table_names(databases[0])
    finally:
        for db in databases:
            await db.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_a_process_starting_while_another_leads_the_fleet_is_not_kept_waiting(tmp_path, postgres_url):
    """The fleet's leader holds its advisory lock for as long as it lives; the schema lock is another."""
    from polly.fleet import LEADER_LOCK

    assert migrations.SCHEMA_LOCK_KEY != LEADER_LOCK
    leader = create_async_engine(postgres_url)
    starting = Database(make_settings(tmp_path, database_url=postgres_url))
    try:
        async with leader.connect() as conn:
            assert await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK})
            await asyncio.wait_for(starting.create_tables(), timeout=30)
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK})
    finally:
        await starting.dispose()
        await leader.dispose()


async def test_a_version_1_database_gets_the_alert_attempt_column_and_keeps_its_events(empty_database):
    """Version 2 adds polly_alert_events.attempted_at to a database made by version 1."""
    await empty_database.create_tables()
    async with empty_database.engine.begin() as conn:
        await conn.execute(text('ALTER TABLE "polly_alert_events" DROP COLUMN "attempted_at"'))
        await conn.execute(text('UPDATE "polly_schema_version" SET version = 1'))
        await conn.execute(
            text(
                "INSERT INTO polly_alert_events (at, kind, rule, subject, value, threshold, message, delivered) "
                "VALUES (:at, 'fired', 'memory', 'process', 90, 85, 'high', false)"
            ),
            {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    await empty_database.create_tables()
    async with empty_database.engine.connect() as conn:
        assert await conn.run_sync(migrations.current_version) == migrations.LATEST_VERSION == 2
        columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("polly_alert_events")})
        assert "attempted_at" in columns
        assert await conn.scalar(select(alert_events.c.message)) == "high"
