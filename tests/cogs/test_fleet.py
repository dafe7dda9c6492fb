"""/mem fleet: the processes sharing one PostgreSQL, from their heartbeat rows; SQLite: this one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polly.ext.cog import memory_cog
from polly.fleet import FleetStore, heartbeat
from polly.fleet_tables import fleet_instances
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, last_reply, reply_text
from tests.settings import make_settings

MIB = 1024 * 1024


@pytest.fixture
def bot_settings(tmp_path, postgres_url):
    return make_settings(tmp_path, database_url=postgres_url, instance_name="eu-1")


@pytest.fixture
async def fleet(simcord_env, simcord_bot):
    """The bot's fleet table, emptied of earlier runs, and a store to add other processes with."""
    async with simcord_bot.db.transaction() as conn:
        await conn.execute(fleet_instances.delete())
    return FleetStore(simcord_bot.db, forget_hours=24, clock=memory_cog(simcord_bot).monitor.clock)


def other(name: str, now, *, rss_mib: int, limit_mib: int = 1024, silent_s: float = 0):
    seen = now - timedelta(seconds=silent_s)
    return heartbeat(name, [], seen - timedelta(hours=1), seen, rss_mib * MIB, limit_mib * MIB, 1.5, 0)


async def test_the_fleet_shows_every_process_most_loaded_first_and_marks_the_silent(simcord_env, simcord_bot, fleet):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await simcord_env.advance_time(60)  # a tick: this process's own heartbeat
    now = memory_cog(simcord_bot).monitor.clock()
    await fleet.beat(other("us-1", now, rss_mib=900))
    await fleet.beat(other("ap-1", now, rss_mib=100, silent_s=600))  # 10 min without a heartbeat
    result = await operator.slash(ops, "mem fleet")
    text = reply_text(result)
    assert result.ephemeral and "Fleet: 3 instance(s)" in text
    names = {"eu-1", "us-1", "ap-1"}
    rows = [line.split()[0] for line in text.splitlines() if line.split() and line.split()[0] in names]
    assert rows[0] == "us-1"  # 88 % of its limit, the most loaded
    assert "SILENT 10 min" in text and "2 live, 1 silent" in text
    assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)


async def test_a_heartbeat_updates_its_row_and_old_rows_are_forgotten(simcord_env, simcord_bot, fleet):
    now = memory_cog(simcord_bot).monitor.clock()
    await fleet.beat(other("gone-1", now, rss_mib=100, silent_s=25 * 3600))
    await fleet.beat(other("us-1", now, rss_mib=100))
    await fleet.beat(other("us-1", now, rss_mib=200))
    members = {m.instance: m for m in await fleet.members()}
    assert set(members) == {"us-1"} and members["us-1"].rss == 200 * MIB


async def test_200_instances_fit_discord_with_the_rest_summarised(simcord_env, simcord_bot, fleet):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    now = memory_cog(simcord_bot).monitor.clock()
    for i in range(200):
        await fleet.beat(other(f"shard-{i:03d}", now, rss_mib=100 + i, silent_s=900 if i % 50 == 0 else 0))
    result = await operator.slash(ops, "mem fleet")
    message = last_reply(result)
    assert_within_discord_limits(message.content, message.embeds)
    text = reply_text(result)
    assert "Fleet: 200 instance(s)" in text and "… and" in text and "more" in text
    assert "shard-199" in text  # the most loaded come first
    assert "196 live, 4 silent" in text


class TestOnSqlite:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, instance_name="solo")

    async def test_the_process_is_its_own_fleet(self, simcord_env, simcord_bot):
        _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
        text = reply_text(await operator.slash(ops, "mem fleet"))
        assert "Fleet: 1 instance(s)" in text and "solo" in text and "SQLite: this process is the whole fleet" in text


class TestFleetCleanup:
    @pytest.fixture
    def bot_settings(self, tmp_path, postgres_url):
        return make_settings(tmp_path, database_url=postgres_url, instance_name="eu-1", fleet_reply_seconds=2)

    async def test_the_live_processes_answer_and_the_dead_one_is_named(self, simcord_env, simcord_bot, fleet, tmp_path):
        from polly.enhanced_database import Database
        from polly.fleet_cleanup import FleetCleanup
        from polly.gc_tools import cleanup_background_tasks_memory
        from polly.memory_utils import StructureRegistry

        _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
        await simcord_env.advance_time(60)  # eu-1's own heartbeat
        now = memory_cog(simcord_bot).monitor.clock()
        await fleet.beat(other("us-1", now, rss_mib=300))
        await fleet.beat(other("ap-1", now, rss_mib=300, silent_s=3600))  # dead: never answers
        structures = StructureRegistry()

        async def clean_us(_who: str):
            return cleanup_background_tasks_memory(target_registry=structures, gc_generation=0, now=0)

        other_db = Database(simcord_bot.settings.replaced(instance_name="us-1"))  # another process's pool
        us = FleetCleanup(other_db, "us-1", clean_us)
        await us.start()
        try:
            result = await operator.slash(ops, "mem cleanup", scope="fleet")
        finally:
            await us.stop()
            await other_db.dispose()
        text = reply_text(result)
        assert "Fleet cleanup: 2 answered" in text
        assert "eu-1" in text and "us-1" in text and "→" not in text
        assert "No answer within 2.0 s" in text and "ap-1" in text
        assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)


class TestFleetCleanupOnSqlite:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path)

    async def test_it_cleans_this_process_and_says_so(self, simcord_env, simcord_bot):
        _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
        text = reply_text(await operator.slash(ops, "mem cleanup", scope="fleet"))
        assert "This process only: on SQLite it is the whole fleet." in text and "Cleanup done" in text


async def test_a_fleet_dry_run_on_postgresql_says_it_looked_at_this_process_only(simcord_env, simcord_bot, fleet):
    """A dry run changes nothing anywhere, so it asks no other process; it must not talk of SQLite."""
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    text = reply_text(await operator.slash(ops, "mem cleanup", scope="fleet", dry_run=True))
    assert "SQLite" not in text and "Cleanup dry run" in text
    assert "A dry run looks at this process only" in text and "without dry_run" in text
