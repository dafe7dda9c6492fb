"""Memory figures measured in fresh child processes (see benchmarks/soak.py)."""

from __future__ import annotations

import itertools
import os
import statistics

from benchmarks._harness import Result, run_child

IDLE_BUDGET_MIB = 5.0
NO_GROWTH_TOLERANCE_MIB = 1.0  # RSS moves in pages and allocator arenas: "no growth" within 1 MiB


def with_bytecode() -> dict[str, str]:
    """The environment of a measuring process that loads compiled bytecode, as a deployed bot does:
    compiling from source leaves the compiler's garbage in the heap, where two processes' imports
    then differ by chance (PYTHONDONTWRITEBYTECODE in a fresh clone read Polly's footprint 0.4 MiB
    lighter than with bytecode)."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def child(*args: str) -> dict[str, float]:
    return run_child("benchmarks.soak", *args, env=with_bytecode())


def leak_soak() -> list[Result]:
    bounded = child("failures", "bounded")
    unbounded = child("failures", "unbounded")
    growth, base = bounded["growth_mib"], unbounded["growth_mib"]
    share = growth / base if base > 0 else 0.0
    return [
        Result(
            "leak soak: 1,000,000 message-fetch failures for distinct polls",
            growth,
            base,
            "MiB",
            "≤ 2 % of the unbounded growth and ≤ 5 MiB",
            share <= 0.02 and growth <= 5,
            share,
            f"{int(bounded['entries']):,} entries kept vs {int(unbounded['entries']):,} in a plain dict",
        )
    ]


def idle_cog() -> list[Result]:
    with_cog = child("idle", "with-cog")
    without = child("idle", "without-cog")
    cost = with_cog["rss_1000_mib"] - without["rss_1000_mib"]
    growth = with_cog["rss_2000_mib"] - with_cog["rss_1000_mib"]
    return [
        Result(
            "idle cost of the loaded cog after 1,000 ticks",
            cost,
            without["rss_1000_mib"],
            "MiB",
            "≤ +5 MiB RSS",
            cost <= IDLE_BUDGET_MIB,
            None,
            f"{with_cog['rss_1000_mib']:.1f} MiB with the cog vs {without['rss_1000_mib']:.1f} MiB without; "
            f"{int(with_cog['ticks']):,} ticks in all",
        ),
        Result(
            "RSS growth of the idle cog from tick 1,000 to 2,000",
            growth,
            0.0,
            "MiB",
            f"no growth (≤ {NO_GROWTH_TOLERANCE_MIB:g} MiB page noise)",
            growth <= NO_GROWTH_TOLERANCE_MIB,
            None,
        ),
    ]


FOOTPRINT_BUDGETS_MIB = {"embedded": 3.0, "polly": 3.0, "polly-health": 5.0}
FOOTPRINT_LABELS = {
    "embedded": 'A host bot with load_extension("polly") (its own SQLite file)',
    "polly": "Polly's own footprint, HEALTH_PORT unset",
    "polly-health": "Polly's own footprint, HEALTH_PORT set",
}
FOOTPRINT_RUNS = 5


def footprint_child(*args: str) -> dict:
    return run_child("benchmarks.footprint", *args, timeout=300, env=with_bytecode())


def footprint() -> list[Result]:
    """Started bot minus the bare discord.py + SQLAlchemy + aiosqlite bot, fresh processes, interleaved."""
    runs: dict[str, list[float]] = {"bare": [], "embedded": [], "polly": [], "polly-health": [], "polly-command": []}
    for kind in runs:  # writes the bytecode every later process loads; not measured
        footprint_child("started", kind)
    for _ in range(FOOTPRINT_RUNS):
        for kind in runs:
            runs[kind].append(footprint_child("started", kind)["rss_mib"])
    bare = statistics.median(runs["bare"])
    results = []
    for kind, budget in FOOTPRINT_BUDGETS_MIB.items():
        cost = statistics.median(runs[kind]) - bare
        spread = [value - bare for value in runs[kind]]
        results.append(
            Result(
                FOOTPRINT_LABELS[kind],
                cost,
                bare,
                "MiB",
                f"≤ {budget:g} MiB over the bare bot",
                cost <= budget,
                None,
                f"medians of {FOOTPRINT_RUNS} fresh processes each (min {min(spread):.2f}, max {max(spread):.2f} "
                f"against the bare median); bare bot {bare:.1f} MiB",
            )
        )
    started = statistics.median(runs["polly"])
    first = [value - started for value in runs["polly-command"]]
    results.append(
        Result(
            "  after the first /mem command (its tables load tabulate and wcwidth)",
            statistics.median(runs["polly-command"]) - started,
            started,
            "MiB",
            "measured, once per process",
            True,
            None,
            f"over Polly's started bot; min {min(first):.2f}, max {max(first):.2f}",
        )
    )
    steps = footprint_child("imports")["steps"]
    for (_, before), (label, after) in itertools.pairwise(steps):
        results.append(Result(f"  import: {label}", after - before, 0.0, "MiB", "breakdown", True))
    return results


def cache_defaults() -> list[Result]:
    """What Polly's cache defaults save against discord.py's after the same traffic."""
    runs: dict[str, list[float]] = {"polly": [], "discord": []}
    messages = 0.0
    for _ in range(FOOTPRINT_RUNS):
        for kind in runs:
            result = footprint_child("traffic", kind)
            runs[kind].append(result["rss_mib"])
            if kind == "discord":
                messages = result["messages"]
    polly, discord = statistics.median(runs["polly"]), statistics.median(runs["discord"])
    saving = discord - polly
    return [
        Result(
            "RSS saved by Polly's cache defaults after 2,000 members post once",
            saving,
            discord,
            "MiB",
            "> 0 (defaults: no message cache, no member cache)",
            saving > 0,
            None,
            f"discord.py's defaults cached {messages:,.0f} messages; medians of {FOOTPRINT_RUNS} fresh processes",
        )
    ]
