"""python -m benchmarks [--only NAME ...] [--json PATH]: run the figures, print the table, write JSON.

Every figure is measured against a baseline in the same run (interleaved, medians), because
the machines here are shared and noisy: ratios hold where absolute times do not.
"""

from __future__ import annotations

import argparse
import json
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
    bench_chart,
    bench_core,
    bench_fleet,
    bench_heap,
    bench_memory,
    bench_scrape,
)
from benchmarks._harness import Result, fmt_value
from polly.config import Settings
from polly.formatting import draw_table

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
    "cache-defaults": bench_memory.cache_defaults,
    "alert-quality": bench_alerts.alert_quality,
    "scrape-load": bench_scrape.scrape_load,
    "chart": bench_chart.chart_costs,
    "fleet": bench_fleet.fleet_costs,
}
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def table(results: list[Result]) -> str:
    rows = [
        (
            r.figure,
            fmt_value(r.value, r.unit),
            fmt_value(r.baseline, r.unit),
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            r.budget,
            "pass" if r.passed else "FAIL",
        )
        for r in results
    ]
    return draw_table(rows, ("figure", "median", "baseline", "ratio", "budget", "result"), markdown=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="run only these figures")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write results ({DEFAULT_JSON})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results: list[Result] = []
    started = time.perf_counter()
    for name in args.only or FIGURES:
        print(f"running {name} …", file=sys.stderr, flush=True)
        results.extend(FIGURES[name]())
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "seconds": round(time.perf_counter() - started, 1),
                "results": [r.to_dict() for r in results],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {args.json}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
