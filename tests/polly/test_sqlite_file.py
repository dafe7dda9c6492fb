"""The SQLite file deleted or replaced under a running database: noticed, restored or reopened."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select

from polly.enhanced_database import Database, DatabaseUnreachableError
from polly.models import runtime_settings
from polly.sqlite_file import DELETED, REPLACED
from tests.settings import make_settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def write(db: Database, key: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(runtime_settings).values(key=key, value="v", updated_at=datetime.now(UTC)))


async def keys(db: Database) -> list[str]:
    async with db.transaction() as conn:
        return sorted(await conn.scalars(select(runtime_settings.c.key)))


def keys_on_disk(path) -> list[str]:
    """What a fresh process would find in the file."""
    with sqlite3.connect(path) as conn:
        return sorted(row[0] for row in conn.execute("SELECT key FROM polly_runtime_settings"))


async def test_nothing_happened_is_nothing_to_recover(db):
    assert db.file_guard is not None and db.file_guard.problem() is None
    assert await db.recover_file(NOW) is None


@pytest.mark.parametrize("with_wal", [False, True], ids=["the database file", "with its -wal and -shm"])
async def test_a_deleted_file_is_restored_with_every_write_made_after_the_deletion(db, tmp_path, with_wal):
    path = tmp_path / "polly.db"
    await write(db, "before")
    path.unlink()
    if with_wal:
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"polly.db{suffix}").unlink(missing_ok=True)
    await write(db, "after the deletion")  # SQLite takes it without an error, into the unlinked file
    assert db.file_guard.problem() == DELETED

    incident = await db.recover_file(NOW)
    assert incident is not None and incident.kind == DELETED and not incident.lost
    assert "nothing was lost" in incident.describe()
    assert db.file_guard.problem() is None
    await write(db, "after the recovery")
    assert await keys(db) == ["after the deletion", "after the recovery", "before"]
    await db.dispose()
    assert keys_on_disk(path) == ["after the deletion", "after the recovery", "before"]


async def test_a_deleted_folder_is_recreated_too(tmp_path):
    folder = tmp_path / "data"
    database = Database(make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{folder / 'polly.db'}"))
    await database.create_tables()
    try:
        await write(database, "kept")
        shutil.rmtree(folder)
        incident = await database.recover_file(NOW)
        assert incident is not None and not incident.lost
        assert await keys(database) == ["kept"]
    finally:
        await database.dispose()


async def test_a_replaced_file_is_reopened_and_given_the_tables(db, tmp_path):
    path = tmp_path / "polly.db"
    await write(db, "old file")
    replacement = tmp_path / "restored-backup.db"
    sqlite3.connect(replacement).close()  # an empty database someone restored in its place
    os.replace(replacement, path)
    assert db.file_guard.problem() == REPLACED

    incident = await db.recover_file(NOW)
    assert incident is not None and incident.kind == REPLACED and not incident.lost
    assert await keys(db) == []  # the new file, now with Polly's tables
    await write(db, "new file")
    await db.dispose()
    assert keys_on_disk(path) == ["new file"]


async def test_the_pool_monitor_follows_the_new_pool(db, tmp_path):
    (tmp_path / "polly.db").unlink()
    await db.recover_file(NOW)
    before = db.get_pool_status().checkouts
    async with db.transaction() as conn:
        await conn.scalar(select(func.count()).select_from(runtime_settings))
        assert db.get_pool_status().checked_out == 1  # read from the pool in use, not the disposed one
    assert db.get_pool_status().checkouts == before + 1


async def test_two_commands_right_after_a_deletion_lose_nothing(db, tmp_path):
    """A second connection opened after the deletion used to create an empty file at the path; the
    next tick took it for a replacement and every row was gone. New connections now never create it."""
    import asyncio

    path = tmp_path / "polly.db"
    await write(db, "before")
    path.unlink()
    results = await asyncio.gather(write(db, "first"), write(db, "second"), return_exceptions=True)
    assert not path.exists()  # nobody made an empty file there
    assert db.file_guard.problem() == DELETED
    incident = await db.recover_file(NOW)
    assert incident is not None and incident.kind == DELETED and not incident.lost
    written = [k for k, r in zip(("first", "second"), results, strict=True) if not isinstance(r, BaseException)]
    assert await keys(db) == sorted(["before", *written])


def backup_of(path, to):
    """A backup the documented way: one file, written by SQLite's backup API (`.backup`)."""
    with sqlite3.connect(path) as source, sqlite3.connect(to) as target:
        source.backup(target)


def integrity(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


async def test_a_restored_backup_holds_what_the_backup_held_and_nothing_written_after_it(db, tmp_path):
    """The old file's -wal (writes not yet checkpointed) used to be replayed onto the restored file:
    the backup came back holding checkpoints written after it. Commands are refused from the
    replacement until the monitor switches files, and the switch leaves the old -wal behind."""
    import asyncio

    path = tmp_path / "polly.db"
    await write(db, "in the backup")
    backup_of(path, tmp_path / "backup.db")
    for i in range(50):
        await write(db, f"after the backup {i}")
    assert (tmp_path / "polly.db-wal").stat().st_size > 0  # not yet checkpointed into the file
    os.replace(tmp_path / "backup.db", path)

    results = await asyncio.gather(write(db, "first"), write(db, "second"), return_exceptions=True)
    assert all(isinstance(r, DatabaseUnreachableError) and "replaced" in str(r) for r in results), results
    incident = await db.recover_file(NOW)
    assert incident is not None and incident.kind == REPLACED and "switched to the new file" in incident.describe()
    assert await keys(db) == ["in the backup"]
    await write(db, "after the restore")
    await db.dispose()
    assert keys_on_disk(path) == ["after the restore", "in the backup"] and integrity(path) == "ok"


async def test_another_valid_database_put_in_its_place_is_not_corrupted(db, tmp_path):
    """Another SQLite database used to be called "malformed" after the switch (the old -wal's pages
    replayed onto it)."""
    path = tmp_path / "polly.db"
    for i in range(50):
        await write(db, f"old {i}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.executemany("INSERT INTO notes (text) VALUES (?)", [(f"note {i}",) for i in range(200)])
    os.replace(other, path)
    assert await db.recover_file(NOW) is not None
    assert await keys(db) == []
    await db.dispose()
    assert integrity(path) == "ok"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 200


async def test_a_file_that_is_not_a_database_stays_an_incident_and_nothing_is_stored(db, tmp_path):
    """A garbage file was called "replaced", then commands answered "stored" while every tick failed."""
    path = tmp_path / "polly.db"
    await write(db, "old")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a database " * 1000)
    os.replace(garbage, path)
    for _ in range(2):  # each tick tries again; the file stays what it is
        with pytest.raises(Exception, match="not a database"):
            await db.recover_file(NOW)
        assert db.file_guard.problem() == REPLACED  # /health stays 503 (it asks the guard)
        with pytest.raises(DatabaseUnreachableError, match="replaced"):
            await write(db, "would be lost")
    assert path.read_bytes() == b"not a database " * 1000
