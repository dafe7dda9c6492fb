"""`reload_extension("polly")` at any moment leaves nothing behind and loses or doubles no alert;
`unload_extension("polly")` removes /mem, the loops and the endpoints."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import socket
import threading
import tracemalloc

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot import poll_checks
from polly.ext.cog import MemoryCog, memory_cog
from polly.memory_utils import registry
from tests.cogs.helpers import add_ops_guild, reply_text
from tests.settings import make_settings

RELOADS = 20


class Reloader(commands.Cog):
    """An operator's reload and unload commands (jishaku's `jsk reload` does the same): run inside the
    bot, as on a real gateway. (SimCord drives only bot-owned work on its virtual clock; a reload
    called from the test's own task would start the new loops outside it.)"""

    @app_commands.command(name="ext")
    @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in ("reload", "unload", "load")])
    async def ext(self, interaction: discord.Interaction, action: str) -> None:
        bot = interaction.client
        assert isinstance(bot, commands.Bot)
        await getattr(bot, f"{action}_extension")("polly")
        await interaction.response.send_message(f"{action} done", ephemeral=True)


@pytest.fixture
async def reloader(simcord_env, simcord_bot):
    await simcord_bot.add_cog(Reloader())
    await simcord_bot.tree.sync()
    _guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)

    async def run(action: str) -> None:
        result = await operator.slash(ops, "ext", action=action)
        assert result.response.content == f"{action} done"

    return ops, operator, run


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(
        tmp_path,
        health_port=0,
        max_failure_entries=10,
        alert_dict_fill_percent=50,
        alert_for_checks=1,
        memory_check_interval_seconds=60,
    )


def census(bot) -> dict[str, object]:
    """What a load of the extension may hold: tasks, threads, descriptors, child processes, tracing,
    registry entries, listeners, commands, cogs (threads and tasks by kind, not by number)."""
    gc.collect()
    children = [p for p in os.listdir("/proc") if p.isdigit() and _parent_of(p) == os.getpid()]
    return {
        "tasks": sorted(
            t.get_name() for t in asyncio.all_tasks() if not t.done() and "discord-ext-tasks" in t.get_name()
        ),
        "threads": sorted(re.sub(r"\d+", "N", t.name) for t in threading.enumerate()),
        "fds": len(os.listdir("/proc/self/fd")),
        "children": len(children),
        "tracing": tracemalloc.is_tracing(),
        "registry": sorted(t.name for t in registry),
        "listeners": sum(len(v) for v in bot.extra_events.values()),
        "commands": sorted(c.qualified_name for c in bot.tree.walk_commands()),
        "memory_cogs": len([o for o in gc.get_objects() if isinstance(o, MemoryCog)]),
    }


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def alert_titles(channel) -> list[str]:
    return [m.embeds[0].title for m in channel.history() if m.embeds and m.author.bot]


async def test_twenty_reloads_at_any_moment_leave_nothing_behind_and_no_alert_is_lost_or_doubled(
    simcord_env, simcord_bot, reloader
):
    ops, operator, extension = reloader
    await operator.slash(ops, "mem alerts", channel=ops)
    await simcord_env.advance_time(60)
    before = census(simcord_bot)
    assert "discord-ext-tasks: MemoryCogBackground.monitor_loop" in before["tasks"] and before["memory_cogs"] == 1

    # An alert fires while Discord refuses posts: it waits for delivery across the reloads.
    simcord_env.inject_error("POST", f"/channels/{ops.id}/messages", status=503, times=None)
    for poll_id in range(10):
        poll_checks.record_failure(poll_id, "cached_channel")
    await simcord_env.advance_time(60)
    assert memory_cog(simcord_bot).cycle.health.undelivered >= 1

    for round_ in range(RELOADS):
        moment = round_ % 4
        if moment == 1:  # in the middle of a trace
            await operator.slash(ops, "mem trace", minutes=30)
            assert tracemalloc.is_tracing()
        elif moment == 2:  # with tracing left on by a checkpoint
            await operator.slash(ops, "mem checkpoint", trace=True)
        elif moment == 3:  # right after a cleanup, with a tick due
            await operator.slash(ops, "mem cleanup", dry_run=True)
            for poll_id in range(10):
                poll_checks.record_failure(poll_id, "cached_channel")
        await extension("reload")
        await simcord_env.advance_time(30)

    after = census(simcord_bot)
    assert after == {**before, "fds": after["fds"]}
    assert after["fds"] <= before["fds"] + 2  # the endpoints' listening socket was reopened, not kept twice

    # Discord answers again: the alert that waited is posted once, never twice.
    simcord_env.backend.faults.clear()
    await simcord_env.advance_time(120)
    filling = [t for t in alert_titles(ops) if "Tracked structure filling up" in t]
    assert len(filling) == 1, alert_titles(ops)
    assert "Memory of this bot process" in reply_text(await operator.slash(ops, "mem stats"))


async def test_unload_removes_mem_stops_the_loops_and_frees_the_port(simcord_env, simcord_bot, reloader):
    _ops, _operator, extension = reloader
    port = memory_cog(simcord_bot).health_server.port
    await extension("unload")
    gc.collect()
    assert "mem" not in [c.name for c in simcord_bot.tree.get_commands()]
    assert simcord_bot.get_cog("MemoryCog") is None
    assert not [t for t in asyncio.all_tasks() if "MemoryCog" in t.get_name() and not t.done()]
    assert "alert_outbox" not in registry
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free again
    await extension("load")  # and it comes back, with Polly's own bot's settings
    assert memory_cog(simcord_bot).settings is simcord_bot.settings
