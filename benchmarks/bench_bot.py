"""Figures that need the bot: /mem stats through SimCord, loop lag during a cleanup tick."""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import discord
from discord import app_commands

from benchmarks._harness import Result, operator_in_ops
from bot.app import create_bot
from polly.alert_engine import AlertEngine
from polly.alerts import Thresholds
from polly.config import load_settings
from polly.memory_optimizer import MemoryMonitor
from polly.memory_utils import StructureRegistry
from polly.monitor_cycle import MonitorCycle


async def unconnected_layer(settings):
    """Polly's own bot object and a memory layer on its database, opened and ticked once, not
    connected (SimCord virtualises the loop's timers, which would make a lag probe read its
    virtual clock); close with `layer.close()` then `bot.db.dispose()`."""
    from polly.clock import system_clock
    from polly.memory_layer import MemoryLayer

    bot = create_bot(settings)
    layer = MemoryLayer(settings, database=bot.db, clock=system_clock)
    await layer.open()
    await layer.cycle.tick()
    return bot, layer


def _scratch_settings(**overrides: object):
    folder = Path(tempfile.mkdtemp(prefix="polly-bench-"))
    return load_settings(env_file=None, database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}", **overrides)


async def _stats_round_trip() -> tuple[float, float]:
    import simcord

    bot = create_bot(_scratch_settings())

    @app_commands.command(name="ok", description="Replies ok")
    async def ok(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("ok", ephemeral=True)

    bot.tree.add_command(ok)
    async with simcord.run(bot) as env:
        channel, operator = operator_in_ops(env, bot)
        calls = 40

        async def timed(name: str) -> float:
            # CPU time, not wall time: after every action SimCord idles 50 ms to be sure the bot
            # has settled, which would drown both sides in the same constant.
            start = time.process_time()
            for _ in range(calls):
                await operator.slash(channel, name)
            return (time.process_time() - start) / calls

        await timed("mem stats")  # warm both paths
        await timed("ok")
        stats, base = [], []
        for _ in range(5):
            gc.collect()
            base.append(await timed("ok"))
            gc.collect()
            stats.append(await timed("mem stats"))
        await bot.close()
    stats.sort()
    base.sort()
    return stats[len(stats) // 2], base[len(base) // 2]


def stats_round_trip() -> list[Result]:
    median, base = asyncio.run(_stats_round_trip())
    ratio = median / base
    return [
        Result(
            "/mem stats round trip through SimCord (CPU time)",
            median,
            base,
            "s",
            "≤ 3x a trivial slash command",
            ratio <= 3,
            ratio,
            "baseline: a slash command that replies 'ok'",
        )
    ]


async def _max_lag_while(work: object, duration_s: float = 0.6, step_s: float = 0.001) -> float:
    """Largest overshoot (ms) of a 1 ms sleep while `work` (a coroutine or None) runs."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    stop_at = loop.time() + duration_s

    async def probe() -> None:
        nonlocal worst
        while loop.time() < stop_at:
            start = time.perf_counter()
            await asyncio.sleep(step_s)
            worst = max(worst, (time.perf_counter() - start - step_s) * 1000)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.05)
    if work is not None:
        await work  # type: ignore[misc]
    await prober
    return worst


async def _cleanup_tick_lag() -> tuple[float, float, float]:
    settings = _scratch_settings()
    registry = StructureRegistry()
    failures = registry.bounded_dict("failures", max_size=1000, max_age_minutes=60)
    failures.update({i: {"last_attempt": time.time() - 7200} for i in range(1000)})
    monitor = MemoryMonitor(settings, structures=registry)
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.from_settings(settings)), None, registry)
    heap = [[i] for i in range(1_000_000)]  # a million live, GC-tracked objects
    await cycle.tick()  # first tick: sets the cleanup clock

    base_runs, tick_runs = [], []
    durations = []
    for _ in range(5):
        base_runs.append(await _max_lag_while(None))
        cycle.last_cleanup_at = monitor.clock() - timedelta(hours=1)  # the cleanup is due
        failures.update({i: {"last_attempt": time.time() - 7200} for i in range(1000)})
        started = time.perf_counter()

        async def tick() -> None:
            result = await cycle.tick()
            assert result.cleanup is not None

        tick_runs.append(await _max_lag_while(tick()))
        durations.append((time.perf_counter() - started) * 1000)
    del heap
    base_runs.sort()
    tick_runs.sort()
    return tick_runs[2], base_runs[2], sorted(durations)[2]


def cleanup_tick_lag() -> list[Result]:
    with_tick, without, _ = asyncio.run(_cleanup_tick_lag())
    extra = with_tick - without
    return [
        Result(
            "event-loop lag during an automatic cleanup tick, 1,000,000 live objects",
            extra,
            without,
            "ms",
            "≤ 50 ms extra",
            extra <= 50,
            None,
            f"max lag {with_tick:.1f} ms with the tick vs {without:.1f} ms without "
            f"(GC generation {load_settings(env_file=None).memory_gc_generation})",
        )
    ]
