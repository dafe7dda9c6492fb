"""Engine, pool monitor and transaction scope on a SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, insert, select, text

from bot.models import PollStatus, poll_tables, polls
from polly.enhanced_database import Database, PoolTimeoutError
from tests.settings import make_settings

# A poll row as Polly's bot stores one (the table has no defaults: bot/models.py).
POLL = {
    "name": "p",
    "question": "q?",
    "server_id": 1,
    "channel_id": 2,
    "creator_id": 3,
    "status": PollStatus.SCHEDULED,
    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
}


@pytest.fixture(params=["sqlite", "postgres"])
async def small_pool_db(request, tmp_path):
    """A database with pool size 2, overflow 1 and a short timeout, on each backend."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    db = Database(make_settings(tmp_path, database_url=url, db_pool_size=2, db_max_overflow=1, db_pool_timeout=0.3))
    await db.open_tables(poll_tables())
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM votes"))
        await conn.execute(text("DELETE FROM polls"))
    yield db
    await db.dispose()


async def hold_connections(db: Database, count: int, release: asyncio.Event, ready: asyncio.Semaphore):
    async def one() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("SELECT 1"))
            ready.release()
            await release.wait()

    return [asyncio.create_task(one()) for _ in range(count)]


async def test_concurrent_transactions_drive_checked_out_overflow_and_peak_exactly(small_pool_db):
    db = small_pool_db
    release, ready = asyncio.Event(), asyncio.Semaphore(0)
    before = db.get_pool_status()
    tasks = await hold_connections(db, 3, release, ready)
    for _ in range(3):
        await ready.acquire()

    busy = db.get_pool_status()
    assert busy.pool_class == "AsyncAdaptedQueuePool"
    assert (busy.pool_size, busy.max_overflow) == (2, 1)
    assert busy.checked_out == 3
    assert busy.overflow == 1
    assert busy.overflow_checkouts - before.overflow_checkouts == 1
    assert busy.peak_checked_out == 3

    release.set()
    await asyncio.gather(*tasks)
    idle = db.get_pool_status()
    assert idle.checked_out == 0
    assert idle.overflow == 0
    assert idle.checked_in == 2  # the overflow connection was closed, the pool keeps its size
    assert idle.checkins - idle.checkouts == before.checkins - before.checkouts


async def test_exhausted_pool_raises_clear_error_and_counts_one_timeout(small_pool_db):
    db = small_pool_db
    release, ready = asyncio.Event(), asyncio.Semaphore(0)
    tasks = await hold_connections(db, 3, release, ready)
    for _ in range(3):
        await ready.acquire()

    with pytest.raises(PoolTimeoutError, match="DB_POOL_SIZE") as info:
        async with db.transaction() as conn:
            await conn.execute(text("SELECT 1"))
    assert "2 + 1 overflow" in str(info.value)
    assert db.get_pool_status().timeouts == 1

    release.set()
    await asyncio.gather(*tasks)
    assert db.get_pool_status().checked_out == 0


async def test_invalidation_is_counted(small_pool_db):
    db = small_pool_db
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        await conn.invalidate()
    assert db.get_pool_status().invalidations == 1
    assert db.get_pool_status().checked_out == 0


async def test_transaction_commits(small_pool_db):
    db = small_pool_db
    async with db.transaction() as conn:
        await conn.execute(insert(polls).values(**POLL, options=["a", "b"]))
    async with db.transaction() as conn:
        assert await conn.scalar(select(func.count(polls.c.id))) == 1
    assert db.get_pool_status().checked_out == 0


async def test_transaction_rolls_back_on_error_and_releases_connection(small_pool_db):
    db = small_pool_db
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as conn:
            await conn.execute(insert(polls).values(**POLL, options=[]))
            raise RuntimeError("boom")
    assert db.get_pool_status().checked_out == 0
    async with db.transaction() as conn:
        assert await conn.scalar(select(func.count(polls.c.id))) == 0


async def test_default_postgresql_pool_keeps_ten_connections_and_overflows_under_load(postgres_url, tmp_path):
    """Overlapping work opens overflow connections above the ten kept."""
    db = Database(make_settings(tmp_path, database_url=postgres_url, db_pool_size=None, db_max_overflow=None))
    try:
        release, ready = asyncio.Event(), asyncio.Semaphore(0)
        tasks = await hold_connections(db, 3, release, ready)
        for _ in range(3):
            await ready.acquire()
        release.set()
        await asyncio.gather(*tasks)
        status = db.get_pool_status()
        assert (status.pool_size, status.max_overflow, status.checked_in, status.peak_checked_out) == (10, 20, 3, 3)
    finally:
        await db.dispose()


async def test_default_sqlite_pool_runs_overlapping_work_in_turn_on_its_one_connection(tmp_path):
    """On SQLite, work that overlaps waits for the one pooled connection: never a second
    connection (each would be an aiosqlite thread whose glibc arena stays resident)."""
    db = Database(make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"))
    await db.create_tables()
    threads_before = threading.active_count()
    inside = 0
    most_inside = 0

    async def one(i: int) -> int:
        nonlocal inside, most_inside
        async with db.transaction() as conn:
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.01)  # the others ask for the connection meanwhile
            value = await conn.scalar(text(f"SELECT {i}"))
            inside -= 1
            return value

    try:
        assert await asyncio.gather(*(one(i) for i in range(5))) == [0, 1, 2, 3, 4]
        status = db.get_pool_status()
        assert (status.pool_size, status.max_overflow, status.connects, status.peak_checked_out) == (1, 0, 1, 1)
        assert status.timeouts == 0 and most_inside == 1
        assert threading.active_count() == threads_before  # no thread of a second connection
    finally:
        await db.dispose()


async def test_sqlite_connections_get_wal_busy_timeout_and_normal_sync(tmp_path):
    db = Database(make_settings(tmp_path))
    try:
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
    finally:
        await db.dispose()


async def test_default_sqlite_directory_is_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = Database(make_settings(tmp_path, database_url="sqlite:///./data/polly.db"))
    try:
        await db.create_tables()
        assert (tmp_path / "data" / "polly.db").exists()
    finally:
        await db.dispose()


async def test_memory_sqlite_reports_ignored_settings_and_has_no_live_sizing(tmp_path):
    db = Database(make_settings(tmp_path, database_url="sqlite+aiosqlite:///:memory:"))
    try:
        await db.create_tables()
        async with db.transaction() as conn:
            await conn.execute(text("SELECT 1"))
        status = db.get_pool_status()
        assert status.pool_class == "StaticPool"
        assert status.sized is False
        assert "DB_POOL_SIZE" in status.ignored_settings
        assert status.pool_size is None and status.overflow is None and status.overflow_percent is None
        assert status.checkouts >= 1 and status.checked_out == 0
    finally:
        await db.dispose()


async def test_dispose_disposes_the_engine(tmp_path):
    db = Database(make_settings(tmp_path))
    disposed = []
    event.listen(db.engine.sync_engine, "engine_disposed", lambda engine: disposed.append(engine))
    await db.dispose()
    assert disposed == [db.engine.sync_engine]


async def test_an_in_memory_sqlite_url_works_and_says_what_is_lost(tmp_path, caplog):
    """`sqlite://` used to be called a file that cannot be opened; it is an in-memory database."""
    from polly.settings_spec import read_database_url

    db = Database(make_settings(tmp_path, database_url=read_database_url("sqlite://")))
    try:
        await db.create_tables()
        assert db.settings.sqlite_path() is None
        assert "DATABASE_URL is an in-memory SQLite database" in caplog.text and "lost at exit" in caplog.text
    finally:
        await db.dispose()
