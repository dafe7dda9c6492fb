"""What "what grows" costs: the cache census at 10,000 guilds, type counts at 1,000,000 live
objects, and the heap walks (a checkpoint's type count, /mem inspect) at 1 and 5 million. Each
runs in a fresh child process (a heap built for one figure must not slow the next), against a
baseline measured in the same process."""

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
WALK_OBJECTS = (1_000_000, 5_000_000)
BLOCK_BUDGET_S = 0.150  # the longest a heap walk may hold the event loop, at 5M objects
TOTAL_BUDGET = 1.5  # x the same walk in one piece on the loop
HEARTBEAT_S = 0.001


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


async def _max_block(work) -> tuple[float, float, object]:
    """Run `work` while a heartbeat woken by a real 1 ms timer measures the longest time the event
    loop was held (a `sleep(0)` ticker runs between a scan's pieces and feels about half of it);
    returns (longest block, total seconds, result)."""
    longest = 0.0
    done = False

    async def heartbeat() -> None:
        nonlocal longest
        while not done:
            asked = time.perf_counter()
            await asyncio.sleep(HEARTBEAT_S)
            longest = max(longest, time.perf_counter() - asked - HEARTBEAT_S)

    task = asyncio.create_task(heartbeat())
    await asyncio.sleep(HEARTBEAT_S)
    started = time.perf_counter()
    result = await work()
    total = time.perf_counter() - started
    done = True
    await task
    return longest, total, result


def heap_walks(objects: int) -> dict[str, float]:
    """At `objects` live objects: the longest block and total time of the checkpoint's type count,
    in pieces the loop runs between and (baseline) in one piece as before; /mem inspect's."""
    from polly.heap_inspect import inspect_type
    from polly.heap_types import count_types, count_types_in_pieces
    from polly.offline import demo_leak

    held = [Leaf(i) for i in range(objects - 5000)]
    demo_leak.leak(5000)

    async def on_loop():
        return count_types()

    async def run() -> dict[str, float]:
        figures: dict[str, list[float]] = {}
        for _ in range(3):
            for name, work in (
                ("count", count_types_in_pieces),
                ("count_on_loop", on_loop),
                ("inspect", lambda: inspect_type("LeakyWidget", named_roots={})),
            ):
                gc.collect()
                block, total, result = await _max_block(work)
                figures.setdefault(f"{name}_block_s", []).append(block)
                figures.setdefault(f"{name}_total_s", []).append(total)
                if name == "inspect":
                    figures.setdefault("found", []).append(float(bool(result.chain and result.chain.found)))
        return {name: statistics.median(values) for name, values in figures.items()}

    found = asyncio.run(run())
    return {**found, "objects": len(held) + 5000}


def _child(figure: str) -> dict[str, float]:
    return run_child("benchmarks.bench_heap", figure, timeout=600)


def what_grows() -> list[Result]:
    c = _child("census")
    share = c["census_s"] / CHECK_INTERVAL_S
    t = _child("types")
    type_ratio = t["type_counts_s"] / t["gc_s"]
    walks = [run_child("benchmarks.bench_heap", "walks", str(n), timeout=900) for n in WALK_OBJECTS]
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
            "counted in one pass, in C; a checkpoint counts it in pieces, the loop running between them (below)",
        ),
        *(row for w in walks for row in _walk_rows(w)),
    ]


def _walk_rows(w: dict[str, float]) -> list[Result]:
    millions = f"{int(w['objects'] / 1e6)}M"
    at_budget = w["objects"] >= max(WALK_OBJECTS)
    budget = f"≤ {BLOCK_BUDGET_S * 1000:.0f} ms" if at_budget else "reported"
    ratio = w["count_total_s"] / w["count_on_loop_total_s"]
    return [
        Result(
            f"checkpoint type count at {millions} objects: longest event-loop block (1 ms timer heartbeat)",
            w["count_block_s"],
            w["count_on_loop_block_s"],
            "s",
            budget,
            not at_budget or w["count_block_s"] <= BLOCK_BUDGET_S,
            w["count_block_s"] / w["count_on_loop_block_s"],
            "baseline: the same count in one piece on the loop; the rest is gc.get_objects(), the one block",
        ),
        Result(
            f"checkpoint type count at {millions} objects: total time",
            w["count_total_s"],
            w["count_on_loop_total_s"],
            "s",
            f"≤ {TOTAL_BUDGET:g}x the count in one piece",
            ratio <= TOTAL_BUDGET,
            ratio,
            "automatic and /mem checkpoint count the same way",
        ),
        Result(
            f"/mem inspect at {millions} objects: longest event-loop block (1 ms timer heartbeat)",
            w["inspect_block_s"],
            w["count_on_loop_block_s"],
            "s",
            budget,
            (not at_budget or w["inspect_block_s"] <= BLOCK_BUDGET_S) and w["found"] == 1.0,
            w["inspect_block_s"] / w["count_on_loop_block_s"],
            f"total {w['inspect_total_s']:.2f} s; " + ("the chain was found" if w["found"] else "no chain found"),
        ),
    ]


FIGURES = {"census": census, "types": type_counts}

if __name__ == "__main__":
    if sys.argv[1] == "walks":
        print(json.dumps(heap_walks(int(sys.argv[2]))))
    else:
        print(json.dumps(FIGURES[sys.argv[1]]()))
