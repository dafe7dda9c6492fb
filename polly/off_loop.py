"""Polly's off-loop work on one worker thread of its own.

The heap trim, a checkpoint's type count, `/mem inspect`'s search and a trace's summary each run
off the event loop. On asyncio's default executor, two that overlap (a trim while a checkpoint
counts) start a second thread, kept for the process's life, and even calls taken in turn can
(the worker says it is idle only after the caller has its result). One single-thread executor,
made at the first call, bounds Polly to one thread whatever happens; its calls queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

T = TypeVar("T")

_worker: ThreadPoolExecutor | None = None
_pending = 0  # calls handed to the worker and not yet answered


async def off_loop(call: Callable[..., T], *args: object) -> T:
    """`call(*args)` on Polly's worker thread, after the calls queued before it."""
    global _worker, _pending
    if _worker is None:
        from concurrent.futures import ThreadPoolExecutor  # loaded with the first call

        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polly-off-loop")
    _pending += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_worker, call, *args)
    finally:
        _pending -= 1


def stop_worker() -> None:
    """End the worker thread (the extension's unload: nothing of Polly's stays behind); the next
    call makes a new one. An idle worker is joined at once (it only has to see the stop); a busy
    one ends after its calls, without holding the event loop meanwhile."""
    global _worker
    worker, _worker = _worker, None
    if worker is not None:
        worker.shutdown(wait=_pending == 0)
