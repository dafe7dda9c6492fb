"""Child process: Polly's bot in SimCord put into one memory state, and what `/mem explain` names.

python -m benchmarks.rss_states objects|burst|native|mapped -> JSON {"named": part, "rss_growth": bytes, ...}

Each state runs in a fresh interpreter, so one state's leftovers (pymalloc arenas kept after the
burst, glibc's free chunks) cannot decide the next one's verdict. The operator does what the README
says: `/mem checkpoint label:before`, then (the state entered) `/mem explain compare_to:before`.
The states are the issue's: 200 MiB of small live objects; a burst of 2 million small objects of
which one in 20 stays; 200 MiB from libc's malloc, touched; a 200 MiB file mapped and read. The
tests (`tests/cogs/test_mem_explain.py`) put the bot into these same states.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import mmap
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SIZE = 200 * 1024 * 1024


@contextmanager
def live_python_objects() -> Iterator[None]:
    keep = [(i, i) for i in range(SIZE // 64)]  # 64-byte tuples
    yield
    del keep


@contextmanager
def burst_then_one_in_twenty() -> Iterator[None]:
    burst = [(i, i) for i in range(2_000_000)]
    kept = burst[::20]
    del burst
    yield
    del kept


@contextmanager
def native_memory() -> Iterator[None]:
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(SIZE)
    ctypes.memset(block, 7, SIZE)
    try:
        yield
    finally:
        libc.free(block)


@contextmanager
def mapped_file(folder: Path) -> Iterator[None]:
    path = folder / "mapped.bin"
    with open(path, "wb") as created:
        created.truncate(SIZE)
    with open(path, "rb") as reading, mmap.mmap(reading.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        sum(mapped[i] for i in range(0, SIZE, mmap.PAGESIZE))  # touch every page
        yield


async def _explain(state: str, folder: Path) -> dict[str, object]:
    import simcord

    from benchmarks._harness import operator_in_ops
    from bot.app import create_bot
    from polly.config import load_settings
    from polly.ext.cog import memory_cog
    from polly.rss_breakdown import LABELS, changes

    settings = load_settings(env_file=None, environ={}, database_url=f"sqlite+aiosqlite:///{folder / 'polly.db'}")
    bot = create_bot(settings)
    states = {
        "objects": live_python_objects,
        "burst": burst_then_one_in_twenty,
        "native": native_memory,
        "mapped": lambda: mapped_file(folder),
    }
    async with simcord.run(bot) as env:
        ops, you = operator_in_ops(env, bot)
        await env.advance_time(settings.memory_check_interval_seconds)
        monitor = memory_cog(bot).monitor
        await you.slash(ops, "mem checkpoint", label="before")
        before = monitor.breakdown_now()
        with states[state]():
            monitor.sample()  # the next tick's sample: RSS now
            reply = await you.slash(ops, "mem explain", compare_to="before")
            after = monitor.breakdown_now()
        await bot.close()
    answer = [m for m in [reply.response, *reply.followups] if m is not None][-1]
    description = answer.embeds[0].description or ""
    first = description.split("\n")[0]
    by_label = {label: name for name, label in LABELS.items()}
    named = next((name for label, name in by_label.items() if first.startswith(f"**{label} grew by ")), None)
    assert before is not None and after is not None
    grown = {change.name: change.change for change in changes(before, after)}
    return {
        "named": named,
        "rss_growth": after.rss - before.rss,
        "part_growth": grown,
        "verdict": first.replace("**", ""),
    }


def main(argv: list[str]) -> None:
    import logging

    logging.disable(logging.WARNING)  # SimCord's probe client warns about intents; not measured
    folder = Path(tempfile.mkdtemp(prefix="polly-rss-states-"))
    print(json.dumps(asyncio.run(_explain(argv[0], folder))))


if __name__ == "__main__":
    main(sys.argv[1:])
