"""The extension in bots that are not Polly's: plain and sharded bots, a host's engine and owner
check, a bad POLLY_ setting. Polly's own bot is covered by every other test in this folder."""

from __future__ import annotations

import contextlib

import discord
import pytest
import simcord
from discord.ext import commands
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import polly
from polly.ext.cog import memory_cog
from tests.cogs.helpers import reply_text


@pytest.fixture
def polly_file(tmp_path, monkeypatch):
    """Polly's own database for these bots, through the variable an operator would set."""
    path = tmp_path / "polly-memory.db"
    monkeypatch.setenv("POLLY_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    return path


def plain_bot(cls: type[commands.Bot] = commands.Bot, **options) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = True
    return cls(command_prefix="?", intents=intents, **options)


def guild_with_admin(env, **options):
    guild = env.create_guild("Host", **options)
    channel = guild.create_text_channel("general")
    admins = guild.create_role("Admins", permissions=discord.Permissions(administrator=True))
    return guild, channel, admins


@contextlib.asynccontextmanager
async def running(bot: commands.Bot):
    """The bot in SimCord, commands synced, with an owner who is a server administrator; closed after.
    Yields (env, guild, channel, admins role, owner)."""
    try:
        async with simcord.run(bot) as env:
            await bot.tree.sync()
            guild, channel, admins = guild_with_admin(env, **({"shard_id": 1} if bot.shard_count else {}))
            owner = guild.add_member(env.create_user("owner"), roles=[admins])
            bot.owner_ids = {owner.id}
            yield env, guild, channel, admins, owner
    finally:
        await bot.close()


@pytest.mark.parametrize("cls", [commands.Bot, commands.AutoShardedBot])
async def test_a_plain_bot_loads_polly_with_nothing_prepared(polly_file, cls):
    bot = plain_bot(cls, **({"shard_count": 2} if cls is commands.AutoShardedBot else {}))
    await bot.load_extension("polly")  # before login, as `async with bot:` code does
    async with running(bot) as (_env, _guild, channel, _admins, owner):
        assert "Memory of this bot process" in reply_text(await owner.slash(channel, "mem stats"))
        assert polly_file.exists()
        assert bot.command_prefix == "?" and bot.intents.message_content and bot.help_command is not None


async def test_a_host_may_construct_the_cog_itself(tmp_path):
    """The second documented way: the host builds MemoryCog with its own settings and adds it."""
    bot = plain_bot()
    settings = polly.embedded_settings(environ={}, database_url=f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    await bot.add_cog(polly.MemoryCog(bot, settings=settings))
    async with running(bot) as (_env, _guild, channel, _admins, owner):
        assert "Memory of this bot process" in reply_text(await owner.slash(channel, "mem stats"))
        assert (tmp_path / "own.db").exists()


async def test_the_hosts_own_owner_check_decides_who_is_an_operator(polly_file):
    class Host(commands.Bot):
        async def is_owner(self, user: discord.abc.User) -> bool:  # e.g. a team of moderators
            return user.name.startswith("team-")

    bot = plain_bot(Host)
    await bot.load_extension("polly")
    async with running(bot) as (env, guild, channel, admins, _owner):
        member = guild.add_member(env.create_user("team-ana"), roles=[admins])
        other = guild.add_member(env.create_user("bob"), roles=[admins])
        assert "Memory of this bot process" in reply_text(await member.slash(channel, "mem stats"))
        cursor = env.error_cursor
        refused = reply_text(await other.slash(channel, "mem stats"))
        assert "You must be one of this bot's operators" in refused
        assert [type(e).__name__ for e in env.errors[cursor:]] == ["CheckFailure"]  # answered, acknowledged


async def test_a_bad_polly_setting_fails_the_load_with_one_line_and_the_host_runs_on(monkeypatch, tmp_path):
    monkeypatch.setenv("POLLY_MEMORY_CHECK_INTERVAL_SECONDS", "0")
    bot = plain_bot()

    @bot.command()
    async def ping(ctx: commands.Context) -> None:
        await ctx.send("pong")

    with pytest.raises(commands.ExtensionFailed) as caught:
        await bot.load_extension("polly")
    message = str(caught.value)
    assert "POLLY_MEMORY_CHECK_INTERVAL_SECONDS='0' is not allowed (below 1); allowed: seconds, 1 to 3600" in message
    assert "\n" not in message
    assert "polly" not in bot.extensions and bot.get_cog("MemoryCog") is None
    try:
        async with simcord.run(bot) as env:
            guild, channel, _admins = guild_with_admin(env)
            member = guild.add_member(env.create_user("someone"))
            await member.send(channel, "?ping")
            assert [m.content for m in channel.history()][-1] == "pong"
    finally:
        await bot.close()


async def test_a_hosts_engine_keeps_pollys_tables_beside_its_own_and_stays_the_hosts(tmp_path):
    """`polly.configure(bot, engine=...)`: Polly's tables in the host's database, /mem pool watching the
    host's pool, the host's tables untouched, and the engine still the host's after the unload."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'host.db'}", pool_size=3, max_overflow=4)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE polls (id INTEGER PRIMARY KEY, question TEXT)"))
        await conn.execute(text("INSERT INTO polls VALUES (1, 'pizza?')"))
    bot = plain_bot()
    polly.configure(bot, settings=polly.embedded_settings(environ={}), engine=engine)
    await bot.load_extension("polly")
    async with running(bot) as (_env, _guild, channel, _admins, owner):
        pool = reply_text(await owner.slash(channel, "mem pool"))
        assert "AsyncAdaptedQueuePool" in pool and "3" in pool
        assert memory_cog(bot).layer.db.get_pool_status().max_overflow == 4
        await bot.unload_extension("polly")
    async with engine.connect() as conn:  # not disposed by Polly: still the host's to use
        assert list(await conn.execute(text("SELECT id, question FROM polls"))) == [(1, "pizza?")]
        columns = [r[1] for r in await conn.execute(text("PRAGMA table_info(polls)"))]
        tables = {r[0] for r in await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert columns == ["id", "question"]
    assert {t for t in tables if not t.startswith("polly_")} == {"polls"}
    assert "polly_memory_checkpoints" in tables
    await engine.dispose()
