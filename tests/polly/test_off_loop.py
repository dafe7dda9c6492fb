"""Polly's off-loop calls run on one worker thread of its own, one at a time."""

from __future__ import annotations

import asyncio
import threading
import time

from polly.off_loop import off_loop


async def test_overlapping_calls_take_turns_on_one_worker_thread():
    running, overlaps, threads = [0], [], set()
    lock = threading.Lock()

    def work() -> None:
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        threads.add(threading.current_thread().name)
        time.sleep(0.02)  # long enough that a second thread would be started for an overlapping call
        with lock:
            running[0] -= 1

    before = {t.name for t in threading.enumerate()}
    await asyncio.gather(*(off_loop(work) for _ in range(4)))
    assert max(overlaps) == 1  # never two at once
    assert len(threads) == 1 and next(iter(threads)).startswith("polly-off-loop")
    assert len({t.name for t in threading.enumerate()} - before) <= 1
