"""What "what grows" costs: the cache census at 10,000 guilds, type counts and /mem inspect at
1,000,000 live objects. Each runs in a fresh child process (a heap built for one figure must not
slow the next), against a baseline measured in the same process."""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time

from benchmarks._harness import Result, interleaved, per_call, run_child

GUILDS = 10_000
OBJECTS = 1_000_000
CHECK_INTERVAL_S = 60.0
CENSUS_CORE_SHARE_BUDGET = 0.0005  # 0.05 % of one core at the default interval
TYPE_COUNT_BUDGET = 1.5  # x one full garbage collection of the same heap (once per checkpoint)
INSPECT_PAUSE_BUDGET = 2.0  # x one full garbage collection of the same heap (/mem cleanup pays that)


class Leaf:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def _guild_payload(i: int) -> dict:
    return {
        "id": str(i),
        "name": f"guild {i}",
        "member_count": 100,
        "channels": [{"id": str(i * 1000 + c), "type": 0, "name": f"c{c}", "position": c} for c in range(20)],
        "roles": [
            {"id": str(i * 1000 + 500 + r), "name": f"r{r}", "permissions": "0", "position": r} for r in range(10)
        ],
    }


def census() -> dict[str, float]:
    import discord
    import psutil
    from discord.ext import commands

    from polly.ext.cache_census import take_census

    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    state = bot._connection
    for i in range(1, GUILDS + 1):
        state._add_guild(discord.Guild(data=_guild_payload(i), state=state))
    proc = psutil.Process()
    median, base, *_ = interleaved(
        lambda: per_call(lambda: take_census(bot), 20), lambda: per_call(proc.memory_full_info, 20)
    )
    return {"census_s": median, "full_info_s": base, "guilds": len(state._guilds)}


def type_counts() -> dict[str, float]:
    from polly.heap_types import type_counts as count

    held = [Leaf(i) for i in range(OBJECTS)]
    median, base, *_ = interleaved(lambda: per_call(count, 3), lambda: per_call(lambda: gc.collect(2), 3), 5)
    return {"type_counts_s": median, "gc_s": base, "objects": len(held)}


async def _max_pause(work) -> tuple[float, object]:
    """Run `work` while a ticker measures the longest time the event loop was held."""
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    result = await work()
    done = True
    await task
    return longest, result


def inspect_pause() -> dict[str, float]:
    from polly.heap_inspect import inspect_type
    from polly.offline import demo_leak

    held = [Leaf(i) for i in range(OBJECTS - 5000)]
    demo_leak.leak(5000)

    async def run() -> tuple[float, float, bool]:
        pauses, found = [], False
        for _ in range(3):
            pause, result = await _max_pause(lambda: inspect_type("LeakyWidget", named_roots={}))
            pauses.append(pause)
            found = bool(result.chain and result.chain.found)
        gc_pauses = []
        for _ in range(3):
            start = time.perf_counter()
            gc.collect(2)
            gc_pauses.append(time.perf_counter() - start)
        return statistics.median(pauses), statistics.median(gc_pauses), found

    pause, gc_pause, found = asyncio.run(run())
    return {"pause_s": pause, "gc_s": gc_pause, "found": float(found), "objects": len(held) + 5000}


def _child(figure: str) -> dict[str, float]:
    return run_child("benchmarks.bench_heap", figure, timeout=600)


def what_grows() -> list[Result]:
    c = _child("census")
    share = c["census_s"] / CHECK_INTERVAL_S
    t = _child("types")
    type_ratio = t["type_counts_s"] / t["gc_s"]
    p = _child("inspect")
    pause_ratio = p["pause_s"] / p["gc_s"]
    return [
        Result(
            f"cache census at {int(c['guilds']):,} guilds (every tick and /mem stats)",
            c["census_s"],
            c["full_info_s"],
            "s",
            "≤ 0.05 % of one core at 60 s",
            share <= CENSUS_CORE_SHARE_BUDGET,
            c["census_s"] / c["full_info_s"],
            f"{share * 100:.4f} % of one core; baseline: one memory_full_info()",
        ),
        Result(
            f"type counts at {int(t['objects'] / 1e6)}M objects (checkpoints only)",
            t["type_counts_s"],
            t["gc_s"],
            "s",
            f"≤ {TYPE_COUNT_BUDGET:g}x one full GC of the same heap",
            type_ratio <= TYPE_COUNT_BUDGET,
            type_ratio,
            "the event loop waits for it once per checkpoint; /mem cleanup's full GC holds it as long",
        ),
        Result(
            f"/mem inspect: longest event-loop pause at {int(p['objects'] / 1e6)}M objects",
            p["pause_s"],
            p["gc_s"],
            "s",
            f"≤ {INSPECT_PAUSE_BUDGET:g}x one full GC of the same heap",
            pause_ratio <= INSPECT_PAUSE_BUDGET and p["found"] == 1.0,
            pause_ratio,
            "the chain was found" if p["found"] else "no chain found",
        ),
    ]


FIGURES = {"census": census, "types": type_counts, "inspect": inspect_pause}

if __name__ == "__main__":
    print(json.dumps(FIGURES[sys.argv[1]]()))
