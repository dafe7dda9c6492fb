"""Child processes for memory figures, so each starts from a clean heap.

python -m benchmarks.soak failures bounded|unbounded   -> JSON {"growth_mib": ...}
python -m benchmarks.soak idle with-cog|without-cog    -> JSON {"rss_1000_mib": ..., "rss_2000_mib": ...}
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import psutil

from polly.ext.cog import memory_cog
from polly.memory_utils import force_garbage_collection

FAILURES = 1_000_000


def rss_mib() -> float:
    force_garbage_collection(2)  # collect and trim, so RSS shows what is live
    return psutil.Process().memory_info().rss / 1024 / 1024


def failures(kind: str) -> dict[str, float]:
    """Record a million failures for distinct polls, through Polly's tracking or a plain dict."""
    from bot import poll_checks

    if kind == "unbounded":
        poll_checks.message_fetch_failures = {}  # what the original bot had
    before = rss_mib()
    for poll_id in range(FAILURES):
        if kind == "unbounded":
            entry = poll_checks.message_fetch_failures.setdefault(
                poll_id, {"count": 0, "first_failure": 0.0, "last_attempt": 0.0, "methods_tried": []}
            )
            entry["count"] += 1
            entry["last_attempt"] = float(poll_id)
            entry["methods_tried"].append("cached_channel")
        else:
            poll_checks.record_failure(poll_id, "cached_channel", now=float(poll_id))
    return {"growth_mib": rss_mib() - before, "entries": len(poll_checks.message_fetch_failures)}


async def idle(kind: str) -> dict[str, float]:
    """RSS after 1,000 and 2,000 monitor intervals of an idle bot, with or without the memory cog."""
    import simcord

    from bot.app import create_bot
    from polly.config import load_settings

    folder = Path(tempfile.mkdtemp(prefix="polly-idle-"))
    settings = load_settings(env_file=None, database_url=f"sqlite+aiosqlite:///{folder / 'idle.db'}")
    bot = create_bot(settings)
    # SimCord settles for a moment after every timer it fires: 2,000 ticks take minutes of real time.
    async with simcord.run(bot, settle_timeout=1800) as env:
        env.create_guild().create_text_channel("ops")
        if kind == "without-cog":
            await bot.unload_extension("polly")
        interval = settings.memory_check_interval_seconds
        await env.advance_time(interval * 1000)
        at_1000 = rss_mib()
        await env.advance_time(interval * 1000)
        at_2000 = rss_mib()
        ticks = memory_cog(bot).cycle.health.ticks if kind != "without-cog" else 0  # unloaded: no cog
        await bot.close()
    return {"rss_1000_mib": at_1000, "rss_2000_mib": at_2000, "ticks": ticks}


def main(argv: list[str]) -> None:
    figure, kind = argv
    result = failures(kind) if figure == "failures" else asyncio.run(idle(kind))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
