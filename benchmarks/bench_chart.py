"""What charts cost the bot: RSS after 100 charts, time to a chart, event-loop lag while drawing.

A real bot object (database, monitor cycle, alert store) with a week of 5-minute history and a
full set of checkpoints, not connected (SimCord virtualises the loop's timers, which would make a
lag probe read its virtual clock). Baseline for the time: starting an empty Python process, the
floor of drawing in a child; for the lag: the same probe with no chart.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from datetime import timedelta

from benchmarks._harness import GcPauses, Result
from benchmarks.bench_bot import _scratch_settings, unconnected_layer
from benchmarks.footprint import rss_mib
from polly.ext.chart_reply import make_chart

CHARTS = 100
RSS_BUDGET_MIB = 1.5
TIME_BUDGET_S = 3.0
LAG_BUDGET_MS = 20.0


async def _week_of_history(layer) -> None:
    now = layer.monitor.clock()
    history = layer.cycle.history
    for i in range(7 * 24 * 12, 0, -1):
        at = now - timedelta(minutes=5 * i)
        for _ in range(5):
            history.add(at, 300 * 1024 * 1024 + i * 20_000, 1024 * 1024 * 1024)
        if i % 3 == 0:
            history.note_cleanup(at, manual=i % 300 == 0)
        if i % 100 == 0:
            await history.flush_due()
    await history.flush_due()
    for i in range(60):  # more than the stores keep: the newest 50 manual and 48 automatic remain
        await layer.monitor.checkpoint(f"bench-{i}")
        await layer.monitor.checkpoint(automatic=True)


async def _empty_process() -> float:
    start = time.perf_counter()
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    return time.perf_counter() - start


async def _chart_costs() -> dict[str, object]:
    bot, layer = await unconnected_layer(_scratch_settings())
    await _week_of_history(layer)
    instance = bot.settings.instance()
    await make_chart(layer.cycle, 24, instance)  # warm: first queries, first child
    before = rss_mib()
    loop = asyncio.get_running_loop()
    worst_lag, times = 0.0, []
    done = asyncio.Event()
    pauses = GcPauses()

    async def probe() -> None:
        nonlocal worst_lag
        while not done.is_set():
            start, collecting = loop.time(), pauses.total_ms
            await asyncio.sleep(0.001)
            own = (loop.time() - start - 0.001) * 1000 - (pauses.total_ms - collecting)
            worst_lag = max(worst_lag, own)

    idle_lag = 0.0
    prober = asyncio.create_task(probe())
    await asyncio.sleep(1.0)
    idle_lag, worst_lag = worst_lag, 0.0
    gc.callbacks.append(pauses.record)
    try:
        for i in range(CHARTS):
            start = time.perf_counter()
            await make_chart(layer.cycle, 168 if i % 2 else 24, instance)
            times.append(time.perf_counter() - start)
    finally:
        gc.callbacks.remove(pauses.record)
    done.set()
    await prober
    after = rss_mib()
    spawn = statistics.median([await _empty_process() for _ in range(10)])
    await layer.close()
    await bot.db.dispose()
    return {
        "rss_growth": after - before,
        "before": before,
        "times": sorted(times),
        "spawn": spawn,
        "lag": worst_lag,
        "idle_lag": idle_lag,
        "full_collections": pauses.full,
        "longest_full_ms": pauses.longest_full_ms,
        "objects": len(gc.get_objects()),
    }


def chart_costs() -> list[Result]:
    m = asyncio.run(_chart_costs())
    times: list[float] = m["times"]  # type: ignore[assignment]
    median, slowest = statistics.median(times), times[-1]
    growth, lag = float(m["rss_growth"]), float(m["lag"])  # type: ignore[arg-type]
    return [
        Result(
            f"bot RSS after {CHARTS} charts (24 h and 7 d alternately)",
            growth,
            float(m["before"]),  # type: ignore[arg-type]
            "MiB",
            f"≤ +{RSS_BUDGET_MIB} MiB",
            growth <= RSS_BUDGET_MIB,
            None,
            "baseline: the bot's RSS before the first chart",
        ),
        Result(
            "time to a chart (query, spec, drawing process), median",
            median,
            float(m["spawn"]),  # type: ignore[arg-type]
            "s",
            f"≤ {TIME_BUDGET_S:g} s, slowest {slowest:.2f} s",
            slowest <= TIME_BUDGET_S,
            median / float(m["spawn"]),  # type: ignore[arg-type]
            "baseline: starting an empty Python process",
        ),
        Result(
            "longest event-loop block by chart work (collector pauses apart)",
            lag,
            float(m["idle_lag"]),  # type: ignore[arg-type]
            "ms",
            f"≤ {LAG_BUDGET_MS:g} ms",
            lag <= LAG_BUDGET_MS,
            None,
            f"baseline: the same probe for 1 s with no chart; full collections during the {CHARTS} charts: "
            f"{m['full_collections']} (longest {float(m['longest_full_ms']):.0f} ms, as any full collection of "  # type: ignore[arg-type]
            f"this {m['objects']:,}-object heap)",
        ),
    ]
