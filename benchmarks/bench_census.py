"""What the bot census costs at 10,000 tasks and 10,000 views: the part every tick reads (tasks by
coroutine, views by class, survivors, children: O(tasks + views), on the loop) and the on-demand
/ checkpoint part (a heap walk for the sessions and unloaded cogs, in pieces), with
the longest event-loop block each causes, felt by a heartbeat woken by a real 1 ms timer. Runs in
a fresh child process, against baselines measured in the same process."""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from datetime import UTC, datetime

from benchmarks._harness import Result, run_child
from benchmarks.bench_heap import _max_block

TASKS = 10_000
VIEWS = 10_000
CHECK_INTERVAL_S = 60.0
TICK_CORE_SHARE_BUDGET = 0.001  # the per-tick census: 0.1 % of one core at the default interval
BLOCK_BUDGET_S = 0.150  # as the checkpoint's heap walk at 5M objects (bench_heap)


def measure() -> dict[str, float]:
    import discord
    from discord.ext import commands

    from polly.bot_watch import BotWatch
    from polly.ext.bot_census import DiscordBotSource
    from polly.heap_types import count_types

    async def run() -> dict[str, float]:
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
        store = bot._connection._view_store
        for i in range(VIEWS):
            view = discord.ui.View(timeout=None if i % 2 else 180)
            view.add_item(discord.ui.Button(label="yes", custom_id=f"yes-{i}"))
            store.add_view(view, 10_000_000 + i)
        forever = asyncio.Event()
        tasks = [asyncio.create_task(forever.wait()) for _ in range(TASKS)]
        await asyncio.sleep(0)
        watch = BotWatch(DiscordBotSource(bot))
        now = datetime.now(UTC)
        figures: dict[str, list[float]] = {}
        for _ in range(5):
            gc.collect()
            started = time.perf_counter()
            census = watch.read(now)
            figures.setdefault("tick_s", []).append(time.perf_counter() - started)
            gc.collect()
            started = time.perf_counter()
            count_types()
            figures.setdefault("type_count_s", []).append(time.perf_counter() - started)

        async def on_loop():
            return count_types()

        for _ in range(3):
            for name, work in (("full", lambda: watch.full(now)), ("count_on_loop", on_loop)):
                gc.collect()
                block, total, _ = await _max_block(work)
                figures.setdefault(f"{name}_block_s", []).append(block)
                figures.setdefault(f"{name}_total_s", []).append(total)
        forever.set()
        await asyncio.gather(*tasks)
        out = {name: statistics.median(values) for name, values in figures.items()}
        return out | {
            "tasks": float(census.task_total),
            "views": float(census.view_total),
            "objects": len(gc.get_objects()),
        }

    return asyncio.run(run())


def bot_census() -> list[Result]:
    m = run_child("benchmarks.bench_census", "measure", timeout=600)
    share = m["tick_s"] / CHECK_INTERVAL_S
    # the tasks: 10,000 waiting, and the expiry timers of the 5,000 views that have a timeout
    at = f"{int(m['tasks']):,} tasks, {int(m['views']):,} views"
    return [
        Result(
            f"bot census every tick at {at}",
            m["tick_s"],
            m["type_count_s"],
            "s",
            f"≤ {TICK_CORE_SHARE_BUDGET * 100:g} % of one core at 60 s",
            share <= TICK_CORE_SHARE_BUDGET,
            m["tick_s"] / m["type_count_s"],
            f"{share * 100:.3f} % of one core; one block on the loop; baseline: one type count of the same heap",
        ),
        Result(
            f"/mem tasks (bot census with its heap walk) at {at}: longest event-loop block (1 ms timer heartbeat)",
            m["full_block_s"],
            m["count_on_loop_block_s"],
            "s",
            f"≤ {BLOCK_BUDGET_S * 1000:.0f} ms",
            m["full_block_s"] <= BLOCK_BUDGET_S,
            m["full_block_s"] / m["count_on_loop_block_s"],
            f"total {m['full_total_s'] * 1000:.0f} ms over {int(m['objects']):,} objects; "
            "baseline: a type count of the same heap in one piece on the loop",
        ),
    ]


if __name__ == "__main__":
    import json

    print(json.dumps(measure() if sys.argv[1:] == ["measure"] else {}))
