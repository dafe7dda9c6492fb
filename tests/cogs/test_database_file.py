"""The SQLite file deleted under the running bot (a real unlink): /health says so with 503, the next
monitor tick restores it and says so in the alert channel, and nothing written meanwhile is lost."""

from __future__ import annotations

import sqlite3

import aiohttp
import pytest

from polly.ext.cog import memory_cog
from tests.cogs.helpers import add_ops_guild, embed_text, reply_text
from tests.settings import make_settings


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(tmp_path, health_port=0)


async def health(bot) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{memory_cog(bot).health_server.port}/health"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_a_deleted_database_file_is_reported_restored_and_keeps_what_was_written(
    simcord_env, simcord_bot, tmp_path
):
    _guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem alerts", channel=ops)
    path = tmp_path / "polly.db"
    assert (await health(simcord_bot))[0] == 200

    path.unlink()
    stored = reply_text(await operator.slash(ops, "mem checkpoint", label="after-the-deletion"))
    assert "Checkpoint 'after-the-deletion' stored" in stored  # SQLite took it, into the unlinked file
    status, body = await health(simcord_bot)
    assert status == 503
    assert any(f"SQLite file {path} was deleted" in reason for reason in body["reasons"])

    await simcord_env.advance_time(simcord_bot.settings.memory_check_interval_seconds)
    notices = [embed_text(e) for m in ops.history() for e in m.embeds if "Database file deleted" in (e.title or "")]
    assert len(notices) == 1 and "Nothing was lost" in notices[0]
    assert (await health(simcord_bot))[0] == 200
    assert path.exists()
    with sqlite3.connect(path) as conn:  # what the next start will read
        labels = {row[0] for row in conn.execute("SELECT label FROM polly_memory_checkpoints")}
    assert "after-the-deletion" in labels


async def test_a_file_that_is_not_a_database_stores_nothing_and_stays_an_incident(simcord_env, simcord_bot, tmp_path):
    """A garbage file in the database's place used to be "replaced", then /mem checkpoint answered
    "stored" while every tick failed. Now: refused in one private line, /health 503 until a database
    is back, the tick's failed step named in /mem stats."""
    import os

    _guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    path = tmp_path / "polly.db"
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a database " * 500)
    os.replace(garbage, path)

    for _ in range(2):  # before the tick and after it
        result = await operator.slash(ops, "mem checkpoint", label="would-be-lost")
        assert result.ephemeral and "Checkpoint 'would-be-lost' stored" not in reply_text(result)
        assert "unavailable" in reply_text(result) and "replaced" in reply_text(result)
        status, body = await health(simcord_bot)
        assert status == 503 and any(f"SQLite file {path} was replaced" in r for r in body["reasons"])
        await simcord_env.advance_time(simcord_bot.settings.memory_check_interval_seconds)
    assert "the database file check" in reply_text(await operator.slash(ops, "mem stats"))
    assert path.read_bytes() == b"this is not a database " * 500
