"""Polly's off-loop calls run on one worker thread of its own, one at a time."""

from __future__ import annotations

import asyncio
import threading
import time

from polly.off_loop import off_loop, stop_worker


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


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("polly-off-loop")]


async def test_stopping_the_worker_ends_its_thread_and_the_next_call_makes_a_new_one():
    await off_loop(time.sleep, 0)
    assert len(_workers()) == 1
    stop_worker()  # idle: joined at once
    assert _workers() == []
    assert (await off_loop(lambda: threading.current_thread().name)).startswith("polly-off-loop")
    assert len(_workers()) == 1
    stop_worker()


async def test_stopping_a_busy_worker_lets_its_call_finish_without_holding_the_loop():
    started, release = threading.Event(), threading.Event()

    def busy() -> str:
        started.set()
        release.wait(5)
        return "done"

    call = asyncio.ensure_future(off_loop(busy))
    while not started.is_set():
        await asyncio.sleep(0.001)
    stop_worker()  # returns at once although the call is still running
    assert not call.done()
    release.set()
    assert await call == "done"
    for thread in _workers():
        thread.join(5)
    assert _workers() == []
