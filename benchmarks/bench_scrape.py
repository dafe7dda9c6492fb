"""Event-loop lag while 1,000 scrapers hit /metrics at once; scrapes while 500 slow clients hold
half-sent request heads (slowloris), and the loop's lag meanwhile.

The bot is real (its database, monitor cycle and health server, a real sample from a real tick)
but not connected: SimCord virtualises the timers of the loop it runs, which would make a lag probe
read its virtual clock. The scrapers run in another process (their own event loop and CPU), so the
lag measured is what serving them costs the bot's loop. Baseline, in the same run: the same burst
against an unknown path (a 404: the HTTP server's own cost per request, no rendering).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time

from benchmarks._harness import GcPauses, Result
from benchmarks.bench_bot import _scratch_settings, unconnected_layer

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


async def _lag_while(script: str, *args: object, settle_s: float) -> tuple[float, dict]:
    """Run a client script in another process; the largest overshoot (ms) of a 1 ms sleep on the
    bot's loop meanwhile, collector pauses apart, and what the script printed (JSON), with the full
    collections that ran ("full_collections", "longest_full_ms"): a full collection's pause is a
    property of the whole heap, and whether one falls into a window is chance (a 60 s window
    often holds one, a 1 s burst rarely), so it is reported beside the lag, not inside it."""
    worst = 0.0
    done = asyncio.Event()
    pauses = GcPauses()

    async def probe() -> None:
        nonlocal worst
        while not done.is_set():
            start, collecting = time.perf_counter(), pauses.total_ms
            await asyncio.sleep(0.001)
            own = (time.perf_counter() - start - 0.001) * 1000 - (pauses.total_ms - collecting)
            worst = max(worst, own)

    prober = asyncio.create_task(probe())
    gc.callbacks.append(pauses.record)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, *map(str, args), stdout=subprocess.PIPE
        )
        out, _ = await process.communicate()
    finally:
        gc.callbacks.remove(pauses.record)
    done.set()
    await prober
    await asyncio.sleep(settle_s)  # let closed connections finish before the next round
    found = json.loads(out)
    found.update(full_collections=pauses.full, longest_full_ms=pauses.longest_full_ms)
    return worst, found


async def _burst_lag(port: int, path: str) -> tuple[float, dict]:
    """Largest overshoot (ms) of a 1 ms sleep on the bot's loop while the burst is served."""
    return await _lag_while(SCRAPER, port, path, SCRAPERS, settle_s=0.2)


async def _scrape_load() -> tuple[list[float], list[float], dict, dict, dict]:
    from polly.ext.health import HealthServer

    bot, layer = await unconnected_layer(_scratch_settings(health_port=0))
    server = HealthServer(bot, layer, {})
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
        slow = await _slow_clients(port, SLOW_CLIENTS, SLOW_SECONDS)
        slow["objects"] = len(gc.get_objects())
        calm = await _slow_clients(port, 0, CALM_SECONDS)
    finally:
        await server.stop()
        await layer.close()
        await bot.db.dispose()
    return metrics, base, seen, slow, calm


SLOW_CLIENTS = 500
SLOW_SECONDS = 60
CALM_SECONDS = 20
SCRAPE_EVERY_S = 5

# Runs in a subprocess: `slow` clients each send half a request head and nothing more, reconnecting
# whenever the server closes them; a scraper asks for /metrics every SCRAPE_EVERY_S meanwhile.
SLOW_CLIENTS_SCRIPT = """
import asyncio, json, sys, time

async def slow_client(port, stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\\r\\nHost: slow")
            await writer.drain()
            await reader.read()  # until the server closes (408, or dropped for a newcomer)
            writer.close()
        except OSError:
            await asyncio.sleep(0.05)

async def scrape(port):
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\\r\\nHost: prometheus\\r\\n\\r\\n")
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return int(answer.split(b" ", 2)[1]), time.perf_counter() - start

async def main(port, slow, seconds, every):
    stop = asyncio.Event()
    clients = [asyncio.create_task(slow_client(port, stop)) for _ in range(slow)]
    await asyncio.sleep(1)  # every slow client connected
    results = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            results.append(await scrape(port))
        except Exception as exc:
            results.append((0, 30.0))
        await asyncio.sleep(every)
    stop.set()
    for task in clients:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    print(json.dumps({"statuses": [s for s, _ in results], "seconds": [t for _, t in results]}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
"""


async def _slow_clients(port: int, slow: int, seconds: float) -> dict:
    """Scrapes every SCRAPE_EVERY_S while `slow` clients hold half-open heads; the bot loop's lag."""
    lag, result = await _lag_while(SLOW_CLIENTS_SCRIPT, port, slow, seconds, SCRAPE_EVERY_S, settle_s=0.5)
    result["lag_ms"] = lag
    return result


def scrape_load() -> list[Result]:
    metrics, base, seen, slow, calm = asyncio.run(_scrape_load())
    lag, baseline = statistics.median(metrics), statistics.median(base)
    slowest, calm_slowest = max(slow["seconds"]), max(calm["seconds"])
    answered = sum(s == 200 for s in slow["statuses"])
    return [
        Result(
            f"event-loop lag while {SCRAPERS:,} concurrent scrapes of /metrics are served (collector pauses apart)",
            lag,
            baseline,
            "ms",
            "< 50 ms",
            lag < 50,
            lag / baseline if baseline else None,
            f"max lag per burst, median of {ROUNDS} (runs {', '.join(f'{v:.0f}' for v in sorted(metrics))} ms); "
            f"{seen['bytes'] // SCRAPERS:,} bytes per answer; baseline: the same burst answered 404",
        ),
        Result(
            f"slowest of {len(slow['seconds'])} scrapes (one every {SCRAPE_EVERY_S} s) while {SLOW_CLIENTS} "
            f"clients hold half-sent heads for {SLOW_SECONDS} s",
            slowest * 1000,
            calm_slowest * 1000,
            "ms",
            "every scrape answered 200 within 1 s",
            answered == len(slow["statuses"]) and slowest < 1.0,
            slowest / calm_slowest if calm_slowest else None,
            f"{answered}/{len(slow['statuses'])} answered 200; scrape times "
            f"min/median/max {min(slow['seconds']) * 1000:.1f}/{statistics.median(slow['seconds']) * 1000:.1f}/"
            f"{slowest * 1000:.1f} ms; baseline: the same scrapes with no slow client",
        ),
        Result(
            f"event-loop lag while {SLOW_CLIENTS} slow clients renew half-sent heads for {SLOW_SECONDS} s "
            "(collector pauses apart)",
            slow["lag_ms"],
            lag,
            "ms",
            f"<= the {SCRAPERS:,}-scrape burst's lag",
            slow["lag_ms"] <= max(lag, 1.0) * 1.5,  # both are one worst moment: allow the noise of one
            slow["lag_ms"] / lag if lag else None,
            f"worst 1 ms-sleep overshoot over the whole attack; baseline: the {SCRAPERS:,}-scrape burst "
            f"(calm scrapes alone: {calm['lag_ms']:.1f} ms)",
        ),
        Result(
            f"  full collections during those {SLOW_SECONDS} s: the longest",
            slow["longest_full_ms"],
            0.0,
            "ms",
            "reported",
            True,
            None,
            f"{slow['full_collections']} full collection(s), each as long as any of this "
            f"{slow['objects']:,}-object heap: the bot's loop waits that long whatever triggered it",
        ),
    ]
