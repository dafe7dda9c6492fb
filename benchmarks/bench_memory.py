"""Memory figures measured in fresh child processes (see benchmarks/soak.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks._harness import Result

ROOT = Path(__file__).resolve().parent.parent
IDLE_BUDGET_MIB = 5.0
NO_GROWTH_TOLERANCE_MIB = 1.0  # RSS moves in pages and allocator arenas: "no growth" within 1 MiB


def child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


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
