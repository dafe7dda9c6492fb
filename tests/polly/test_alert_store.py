"""Processes sharing one database (a fleet) each keep their own alert queue and firing state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from polly.alert_store import AlertStore
from polly.alerts import AlertTransition, Rule, Transition
from polly.models import alert_events

AT = datetime(2026, 1, 1, tzinfo=UTC)


def fired(subject: str) -> AlertTransition:
    return AlertTransition(Transition.FIRED, Rule.MEMORY, subject, 90.0, 80.0, "high", AT, AT)


@pytest.fixture
async def shared_db(each_database):
    """An empty alert table on each database."""
    async with each_database.transaction() as conn:
        await conn.execute(alert_events.delete())
    return each_database


async def test_each_instance_delivers_and_restores_only_its_own_alerts(shared_db):
    eu, us = AlertStore(shared_db, 100, "eu-1"), AlertStore(shared_db, 100, "us-1")
    await eu.record(fired("process"))
    await us.record(fired("process"))
    await us.record(fired("other"))
    assert [e.instance for e in await eu.undelivered()] == ["eu-1"]
    assert {(e.instance, e.subject) for e in await us.undelivered()} == {("us-1", "process"), ("us-1", "other")}
    assert await eu.count_undelivered() == 1 and await us.count_undelivered() == 2
    assert [e.instance for e in await eu.firing()] == ["eu-1"]
    assert len(await eu.recent(10)) == 3  # the history shows the whole fleet, each event naming its instance
    assert {e.at for e in await eu.recent(10)} == {AT}  # times come back aware on both databases


async def test_events_from_before_the_instance_column_belong_to_everyone(shared_db):
    async with shared_db.transaction() as conn:
        await conn.execute(
            insert(alert_events).values(
                at=AT,
                kind="fired",
                rule="memory_percent",
                subject="old",
                value=1,
                threshold=1,
                message="m",
                delivered=False,
            )
        )
    assert [e.subject for e in await AlertStore(shared_db, 100, "eu-1").undelivered()] == ["old"]


async def test_one_instance_trimming_its_history_keeps_the_others(shared_db):
    eu, us = AlertStore(shared_db, 3, "eu-1"), AlertStore(shared_db, 3, "us-1")
    await us.record(fired("us"))
    for i in range(10):
        await eu.record(fired(f"eu-{i}"))
    assert [e.subject for e in await us.undelivered()] == ["us"]
    assert len(await eu.undelivered()) == 3


async def test_a_small_history_never_trims_what_a_restart_needs(shared_db):
    """With ALERT_HISTORY_SIZE=2, an alert still firing keeps its latest event through any number of
    newer ones (a restart would otherwise fire it again as new)."""
    store = AlertStore(shared_db, 2, "eu-1")
    first = await store.record(fired("still-firing"))
    await store.mark_delivered([first])
    for i in range(6):
        event = await store.record(fired(f"other-{i}"))
        await store.mark_delivered([event])
        resolved = AlertTransition(Transition.RESOLVED, Rule.MEMORY, f"other-{i}", 1.0, 80.0, "ok", AT, AT)
        await store.mark_delivered([await store.record(resolved)])
    assert [e.subject for e in await store.firing()] == ["still-firing"]
    # the newest two delivered at the last trim, the last one recorded, and the firing one kept
    assert len(await store.recent(100)) == 4


@pytest.mark.parametrize("returning", [True, False], ids=["RETURNING", "SQLite before 3.35: lastrowid"])
async def test_each_stored_event_is_known_by_its_own_id(db, monkeypatch, returning):
    """The table is a clause without a primary key: the id comes from RETURNING where the database
    has it, else from the cursor's rowid; either way the ids are the rows'."""
    monkeypatch.setattr(db.engine.dialect, "insert_returning", returning)
    store = AlertStore(db, 100, "eu-1")
    ids = [await store.record(fired(f"s{i}")) for i in range(3)]
    assert ids == [e.id for e in await store.undelivered()]
    await store.mark_delivered(ids[1:])
    assert [e.subject for e in await store.undelivered()] == ["s0"]
