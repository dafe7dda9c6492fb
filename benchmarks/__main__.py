"""python -m benchmarks [--only NAME ...] [--runs N] [--readme]: run the figures, print min/median/max.

Every figure is measured against a baseline in the same run (interleaved, medians), because
the machines here are shared and noisy: ratios hold where absolute times do not.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (
    bench_alerts,
    bench_bot,
    bench_breakdown,
    bench_census,
    bench_chart,
    bench_core,
    bench_fleet,
    bench_heap,
    bench_memory,
    bench_scrape,
    spread,
)
from benchmarks._harness import ROOT, Result
from polly.config import Settings

FIGURES: dict[str, Callable[[], list[Result]]] = {
    "tick": lambda: bench_core.monitor_tick(Settings()),
    "stats": bench_bot.stats_round_trip,
    "bounded-dict": bench_core.bounded_dict,
    "cleanup": bench_core.cleanup_million,
    "soak": bench_memory.leak_soak,
    "loop-lag": bench_bot.cleanup_tick_lag,
    "idle": bench_memory.idle_cog,
    "footprint": bench_memory.footprint,
    "what-grows": bench_heap.what_grows,
    "rss-breakdown": bench_breakdown.rss_breakdown_states,
    "cache-defaults": bench_memory.cache_defaults,
    "alert-quality": bench_alerts.alert_quality,
    "scrape-load": bench_scrape.scrape_load,
    "chart": bench_chart.chart_costs,
    "fleet": bench_fleet.fleet_costs,
    "bot-census": bench_census.bot_census,
}
DEFAULT_JSON = Path(__file__).resolve().parent / "record.json"  # tracked: the README is drawn from it
README = ROOT / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="run only these figures")
    parser.add_argument("--runs", type=int, default=1, help="run everything this many times (the README's: 3)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"the record of every run ({DEFAULT_JSON})")
    parser.add_argument("--readme", action="store_true", help="rewrite the README's table from the record")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    logging.basicConfig(level=logging.WARNING)
    runs: list[list[Result]] = []
    groups: dict[str, str] = {}
    started = time.perf_counter()
    for number in range(1, args.runs + 1):
        run: list[Result] = []
        for name in args.only or FIGURES:
            print(f"run {number}/{args.runs}: {name} …", file=sys.stderr, flush=True)
            found = FIGURES[name]()
            groups.update((r.figure, name) for r in found)
            run.extend(found)
        runs.append(run)
    measured = spread.figures(runs, datetime.now(UTC).date().isoformat(), groups)
    print(spread.table(measured))
    record = spread.merge(spread.load(args.json), measured)
    about = {
        "at": datetime.now(UTC).isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    spread.dump(args.json, record, about)
    print(f"\nwritten to {args.json}", file=sys.stderr)
    if args.readme:
        spread.rewrite_readme(README, record)
        print(f"README table rewritten ({len(record)} figures)", file=sys.stderr)
    return 0 if all(r.passed for run in runs for r in run) else 1


if __name__ == "__main__":
    sys.exit(main())
