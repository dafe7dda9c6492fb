"""Child processes for Polly's own footprint: each starts from a clean interpreter.

python -m benchmarks.footprint started bare|embedded|polly|polly-health|polly-command -> JSON {"rss_mib": ...}
python -m benchmarks.footprint imports                          -> JSON {"steps": [[name, rss_mib], ...]}
python -m benchmarks.footprint traffic polly|discord             -> JSON {"rss_mib": ..., "messages": ...}

"bare" is the bot Polly is compared with: discord.py's commands.Bot with an async SQLAlchemy
engine on aiosqlite, one table created. "embedded" is that same bot with one line more,
`load_extension("polly")` (a third-party host, Polly on its own SQLite file); "polly" is Polly's
own bot. Every bot runs in SimCord (set up, commands synced, ten
monitor intervals passed), so SimCord's own memory is on both sides and cancels out.

The measurement loads nothing into the bare bot that Polly would bring: RSS is read from
/proc/self/statm (Linux) after a full collection and glibc's malloc_trim, through ctypes, which
discord.py has already imported. (Measuring with psutil, as this benchmark once did through
benchmarks.soak, put psutil and part of Polly into the bare bot and hid ~1.9 MiB of Polly's cost.)
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path


def rss_mib() -> float:
    """Resident memory after a collection and a heap trim, read without psutil (one side only)."""
    import ctypes

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


# What a bare discord.py + SQLAlchemy + driver bot imports anyway.
BARE_IMPORTS = ("discord", "discord.ext.commands", "discord.ext.tasks", "sqlalchemy.ext.asyncio", "aiosqlite")
# Polly's additions in the order the bot imports them; each step's cost is the RSS it adds.
POLLY_IMPORT_STEPS = (
    ("lru-dict", ("lru",)),
    ("python-dotenv (only with a .env file)", ("dotenv",)),
    (
        "polly core",
        ("polly.config", "polly.process_stats", "polly.memory_utils", "polly.memory_optimizer", "polly.monitor_cycle"),
    ),
    ("polly database, models and migrations", ("polly.enhanced_database", "polly.alert_store", "polly.migrations")),
    ("the extension (polly.ext.cog)", ("polly.ext.cog",)),
    ("Polly's own bot (bot.app, bot.poll_checks)", ("bot.app", "bot.poll_checks")),
    ("polly.ext.health, its HTTP server and polly.metrics (HEALTH_PORT set)", ("polly.ext.health",)),
)
INTERVALS = 10


def imports() -> dict[str, object]:
    for name in BARE_IMPORTS:
        importlib.import_module(name)
    steps: list[tuple[str, float]] = [("bare discord.py + SQLAlchemy + aiosqlite", rss_mib())]
    for label, modules in POLLY_IMPORT_STEPS:
        for name in modules:
            importlib.import_module(name)
        steps.append((label, rss_mib()))
    return {"steps": steps}


async def _bare_bot(folder: Path, *, with_polly: bool = False) -> float:
    import discord
    import simcord
    from discord.ext import commands
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.ext.asyncio import create_async_engine

    bot = commands.Bot(command_prefix=commands.when_mentioned, intents=discord.Intents.default(), help_command=None)
    if with_polly:  # the one line a host adds (in its setup hook), Polly on its own SQLite file
        os.environ["POLLY_DATABASE_URL"] = f"sqlite+aiosqlite:///{folder / 'polly-memory.db'}"

        async def setup_hook() -> None:
            await bot.load_extension("polly")

        bot.setup_hook = setup_hook  # type: ignore[method-assign]
    engine = create_async_engine(f"sqlite+aiosqlite:///{folder / 'bare.db'}")
    metadata = MetaData()
    Table("polls", metadata, Column("id", Integer, primary_key=True))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with simcord.run(bot) as env:
        env.create_guild().create_text_channel("ops")
        await bot.tree.sync()
        await env.advance_time(60 * INTERVALS)
        rss = rss_mib()
        await bot.close()
    await engine.dispose()
    return rss


async def _polly_bot(folder: Path, health: bool, first_command: bool = False) -> float:
    import discord
    import simcord

    from bot.app import create_bot
    from polly.config import load_settings

    overrides = {"health_port": 0} if health else {}
    settings = load_settings(
        env_file=None, environ={}, database_url=f"sqlite+aiosqlite:///{folder / 'polly.db'}", **overrides
    )
    bot = create_bot(settings)
    async with simcord.run(bot) as env:
        guild = env.create_guild()
        ops = guild.create_text_channel("ops")
        await env.advance_time(settings.memory_check_interval_seconds * INTERVALS)
        if first_command:  # an operator's first /mem stats: its tables load tabulate
            admins = guild.create_role("admins", permissions=discord.Permissions(administrator=True))
            you = guild.add_member(env.create_user("you"), roles=[admins])
            bot.owner_ids = {you.id}
            await you.slash(ops, "mem stats")
        rss = rss_mib()
        await bot.close()
    return rss


TRAFFIC = 2000
# discord.py's own defaults: a 1,000-message cache; members cached from the intents (voice).
DISCORD_DEFAULTS = {"discord_max_messages": 1000, "discord_member_cache": "voice"}


async def _traffic(folder: Path, caches: dict[str, object]) -> dict[str, float]:
    """RSS after TRAFFIC members join and each posts a message (SimCord keeps them on both sides)."""
    import simcord

    from bot.app import create_bot
    from polly.config import load_settings

    settings = load_settings(
        env_file=None, environ={}, database_url=f"sqlite+aiosqlite:///{folder / 'polly.db'}", **caches
    )
    bot = create_bot(settings)
    async with simcord.run(bot) as env:
        guild = env.create_guild("busy")
        channel = guild.create_text_channel("general")
        for i in range(TRAFFIC):
            member = guild.add_member(env.create_user(f"visitor{i}"))
            env.backend.create_message(channel.id, member.id, f"hello number {i}, with a few words")
        await env.settle()
        await env.advance_time(settings.memory_check_interval_seconds)
        rss = rss_mib()
        from polly.ext.cog import memory_cog

        census = memory_cog(bot).monitor.count_caches()
        await bot.close()
    return {"rss_mib": rss, "messages": float(census.count("messages") or 0) if census else 0.0}


def started(kind: str) -> dict[str, float]:
    import logging

    logging.disable(logging.WARNING)  # SimCord's probe client warns about intents; not measured
    with tempfile.TemporaryDirectory(prefix="polly-footprint-") as name:  # removed after the reading
        folder = Path(name)
        if kind in ("bare", "embedded"):
            rss = asyncio.run(_bare_bot(folder, with_polly=kind == "embedded"))
        else:
            rss = asyncio.run(_polly_bot(folder, health=kind == "polly-health", first_command=kind == "polly-command"))
    return {"rss_mib": rss, "modules": len(sys.modules)}


def traffic(kind: str) -> dict[str, float]:
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="polly-traffic-") as name:
        return asyncio.run(_traffic(Path(name), DISCORD_DEFAULTS if kind == "discord" else {}))


def main(argv: list[str]) -> None:
    if argv[0] == "imports":
        result = imports()
    elif argv[0] == "traffic":
        result = traffic(argv[1])
    else:
        result = started(argv[1])
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
