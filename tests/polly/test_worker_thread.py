"""Off-loop calls in a thread of their own: result, exception, cancellation, no executor kept."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from polly.worker_thread import run_in_thread


async def test_the_call_runs_in_another_thread_and_its_result_comes_back():
    ran_in: list[threading.Thread] = []

    def work(a: int, b: int) -> int:
        ran_in.append(threading.current_thread())
        return a + b

    assert await run_in_thread(work, 2, 3) == 5
    assert ran_in[0] is not threading.main_thread() and ran_in[0].name == "polly-worker"
    ran_in[0].join(timeout=5)
    assert not ran_in[0].is_alive()  # it ends with its call: no pool is kept


async def test_an_exception_is_raised_in_the_awaiting_task():
    def fail() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        await run_in_thread(fail)


async def test_a_cancelled_caller_leaves_the_call_to_finish_quietly(caplog):
    release, finished = threading.Event(), threading.Event()

    def slow() -> str:
        release.wait(5)
        finished.set()
        return "late"

    task = asyncio.create_task(run_in_thread(slow))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await asyncio.to_thread(finished.wait, 5)
    await asyncio.sleep(0.01)  # the late result reaches the loop: dropped, not an error
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_no_executor_module_is_loaded_for_it():
    """asyncio.to_thread would import concurrent.futures.thread and keep a pool (250 KiB of RSS)."""
    import subprocess

    code = (
        "import asyncio, sys; from polly.worker_thread import run_in_thread; "
        "asyncio.run(run_in_thread(len, 'abc')); print('concurrent.futures.thread' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
