"""Run in a fresh virtual environment where only Polly's wheel (and SimCord) is installed, from a copy
of examples/host_bot/: the third-party bot with `load_extension("polly")`, driven in SimCord.

Prints one JSON object of observations; tests/test_host_bot.py asserts on them. Nothing of the
repository is importable here: `bot` and `cogs` are the host's own modules.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import socket
import sqlite3
import sys
import threading
import tracemalloc
from typing import Any

import discord
import simcord

import bot as host
import polly


def tables_of(path: str) -> list[str]:
    with sqlite3.connect(path) as connection:
        return sorted(r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


def schema_and_rows(path: str) -> dict[str, Any]:
    with sqlite3.connect(path) as connection:
        return {
            "tables": tables_of(path),
            "polls_columns": [tuple(r) for r in connection.execute("PRAGMA table_info(polls)")],
            "polls_rows": [tuple(r) for r in connection.execute("SELECT * FROM polls ORDER BY id")],
        }


def text_of(result: Any) -> str:
    parts = []
    for message in [result.response, *result.followups]:
        if message is None:
            continue
        parts.append(message.content or "")
        for embed in message.embeds:
            parts += [embed.title or "", embed.description or ""]
            parts += [f"{field.name}\n{field.value}" for field in embed.fields]
    return "\n".join(parts)


def resources() -> dict[str, Any]:
    gc.collect()
    return {
        "tasks": sorted(
            t.get_name() for t in asyncio.all_tasks() if not t.done() and "simcord" not in repr(t.get_coro())
        ),
        "threads": sorted(re.sub(r"Thread-\d+", "Thread", t.name) for t in threading.enumerate()),
        "fds": len(os.listdir("/proc/self/fd")),
        "tracing": tracemalloc.is_tracing(),
    }


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def main() -> dict[str, Any]:
    found: dict[str, Any] = {"python": sys.executable}
    seed = host.open_database()  # the bot's own tables, with rows of its own
    seed.execute("INSERT INTO polls (title, yes) VALUES ('lunch?', 3), ('tabs or spaces?', 7)")
    seed.commit()
    seed.close()
    found["host_db_before"] = schema_and_rows(str(host.DATABASE))

    bot = host.create_bot()
    async with simcord.run(bot, check_errors=False) as env:
        guild = env.create_guild("Host guild")
        general = guild.create_text_channel("general")
        ops = guild.create_text_channel("ops")
        admin_role = guild.create_role("Admins", permissions=discord.Permissions(administrator=True))
        owner = guild.add_member(env.create_user("owner"), roles=[admin_role])
        stranger = guild.add_member(env.create_user("stranger"))
        # A server administrator sees /mem (Discord's default permission) but does not own the bot.
        guild_admin = guild.add_member(env.create_user("guildadmin"), roles=[admin_role])
        bot.owner_ids = {owner.id}

        found["extensions"] = sorted(bot.extensions)
        found["prefix"] = bot.command_prefix
        found["help_command"] = type(bot.help_command).__name__
        found["intents"] = {"members": bot.intents.members, "message_content": bot.intents.message_content}
        found["max_messages"] = bot._connection.max_messages
        found["tree"] = sorted(c.name for c in bot.tree.get_commands())
        found["bot_attributes"] = sorted(
            name
            for name in ("settings", "monitor", "cycle", "alert_store", "db", "fleet_cleanup")
            if hasattr(bot, name)
        )

        found["owner_stats"] = text_of(await owner.slash(ops, "mem stats"))
        found["guild_admin_stats"] = text_of(await guild_admin.slash(ops, "mem stats"))
        found["owner_pool"] = text_of(await owner.slash(ops, "mem pool"))
        # Extras not installed here (only `offline`): charts and PostgreSQL say which one to install.
        found["chart_without_pillow"] = text_of(await owner.slash(ops, "mem chart", hours=1))
        try:
            polly.MemoryCog(bot, settings=polly.embedded_settings(environ={}, database_url="postgresql://u:p@db/x"))
        except Exception as exc:
            found["postgres_without_driver"] = f"{type(exc).__name__}: {exc}"

        # The host's own commands: slash and prefix, and !snipe reading the message cache.
        found["slash_tag_set"] = text_of(await owner.slash(general, "tag", name="hello", content="world"))
        found["slash_tag_get"] = text_of(await owner.slash(general, "tag", name="hello"))
        await stranger.send(general, "!tag hello")
        said = await stranger.send(general, "secret plans")
        await stranger.delete(said)
        await env.settle()
        await stranger.send(general, "!snipe")
        found["general"] = [m.content for m in general.history()]

        # Reload in the middle of a trace: tracemalloc ends with it, and the next trace starts.
        await owner.slash(ops, "mem alerts", channel=ops)
        await owner.slash(ops, "mem inspect", type="dict")  # Polly's worker thread exists from here
        found["resources_before"] = resources()
        found["trace_started"] = text_of(await owner.slash(ops, "mem trace", minutes=5))
        found["tracing_during_trace"] = tracemalloc.is_tracing()
        for _ in range(3):  # the owner's !reload, from inside the bot as on a real gateway
            await owner.send(general, "!reload polly")
        await env.settle()
        found["tracing_after_reload"] = tracemalloc.is_tracing()
        found["second_trace"] = text_of(await owner.slash(ops, "mem trace", minutes=1))
        await env.advance_time(61)
        for _ in range(50):  # the trace's results are compared in a thread: let it finish and post
            await asyncio.sleep(0.05)
            await env.settle()
        found["tracing_after_second_trace"] = tracemalloc.is_tracing()
        found["trace_results_posted"] = any("trace" in (e.title or "").lower() for m in ops.history() for e in m.embeds)
        found["resources_after_reloads"] = resources()
        found["stats_after_reload"] = text_of(await owner.slash(ops, "mem stats"))
        await env.advance_time(120)  # the new cog's monitor loop ticks
        found["ticks_after_reload"] = bot.get_cog("MemoryCog").cycle.health.ticks

        # Unload: /mem gone, loops stopped, the endpoints' port free.
        port = int(os.environ["POLLY_HEALTH_PORT"])
        found["port_taken_while_loaded"] = not port_is_free(port)
        await owner.send(general, "!unload polly")
        await env.settle()
        found["tree_after_unload"] = sorted(c.name for c in bot.tree.get_commands())
        found["port_free_after_unload"] = port_is_free(port)
        found["resources_after_unload"] = resources()
        found["general_at_end"] = [m.content for m in general.history()]
        found["polly_modules_after_unload"] = sorted(m for m in sys.modules if m == "polly" or m.startswith("polly."))
        await bot.close()

    found["host_db_after"] = schema_and_rows(str(host.DATABASE))
    found["polly_db_tables"] = tables_of("data/polly-memory.db")
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), default=str))
