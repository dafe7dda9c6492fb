"""Event-loop lag while 1,000 scrapers hit /metrics at once.

The bot is real (its database, monitor cycle and health server, a real sample from a real tick)
but not connected: SimCord virtualises the timers of the loop it runs, which would make a lag probe
read its virtual clock. The scrapers run in another process (their own event loop and CPU), so the
lag measured is what serving them costs the bot's loop. Baseline, in the same run: the same burst
against an unknown path (a 404: the HTTP server's own cost per request, no rendering).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time

from benchmarks._harness import Result
from benchmarks.bench_bot import _scratch_settings
from bot.app import create_bot
from polly.ext.cog import memory_cog

SCRAPERS = 1000
ROUNDS = 5

# Runs in a subprocess: open every connection at once, send the request, read the whole answer.
SCRAPER = """
import asyncio, json, sys

async def one(port, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n".encode())
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1]), len(answer)

async def main(port, path, count):
    results = await asyncio.gather(*(one(port, path) for _ in range(count)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    print(json.dumps({"answered": len(ok), "statuses": sorted({s for s, _ in ok}), "bytes": sum(n for _, n in ok)}))

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""


async def _burst_lag(port: int, path: str) -> tuple[float, dict]:
    """Largest overshoot (ms) of a 1 ms sleep on the bot's loop while the burst is served."""
    worst = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, (time.perf_counter() - start - 0.001) * 1000)

    prober = asyncio.create_task(probe())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRAPER, str(port), path, str(SCRAPERS), stdout=subprocess.PIPE
    )
    out, _ = await process.communicate()
    done.set()
    await prober
    await asyncio.sleep(0.2)  # let closed connections finish before the next burst
    return worst, json.loads(out)


async def _scrape_load() -> tuple[list[float], list[float], dict]:
    from polly.ext.health import HealthServer

    bot = create_bot(_scratch_settings(health_port=0))
    await bot.db.create_tables()
    await memory_cog(bot).cycle.tick()
    server = HealthServer(bot)
    await server.start()
    port = server.port
    assert port is not None
    try:
        await _burst_lag(port, "/metrics")  # warm both paths
        await _burst_lag(port, "/nowhere")
        metrics, base = [], []
        seen: dict = {}
        for _ in range(ROUNDS):
            lag, seen = await _burst_lag(port, "/nowhere")
            base.append(lag)
            lag, seen = await _burst_lag(port, "/metrics")
            metrics.append(lag)
            if seen["answered"] != SCRAPERS or seen["statuses"] != [200]:
                raise RuntimeError(f"not every scrape was answered: {seen}")
    finally:
        await server.stop()
        await bot.db.dispose()
    return metrics, base, seen


def scrape_load() -> list[Result]:
    metrics, base, seen = asyncio.run(_scrape_load())
    lag, baseline = statistics.median(metrics), statistics.median(base)
    return [
        Result(
            f"event-loop lag while {SCRAPERS:,} concurrent scrapes of /metrics are served",
            lag,
            baseline,
            "ms",
            "< 50 ms",
            lag < 50,
            lag / baseline if baseline else None,
            f"max lag per burst, median of {ROUNDS} (runs {', '.join(f'{v:.0f}' for v in sorted(metrics))} ms); "
            f"{seen['bytes'] // SCRAPERS:,} bytes per answer; baseline: the same burst answered 404",
        )
    ]
