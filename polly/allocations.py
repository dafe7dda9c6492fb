"""Allocation tracing with tracemalloc, switched on and off: who asked for it, and whether it is on.

What traces find (allocation sites with their call paths, time-boxed traces) is
`polly.allocation_trace`, loaded with the first trace or traced checkpoint. The `tracemalloc`
module (72 KiB of RSS) is imported when tracing is first used; whether tracing is on is read from
its C half, which the interpreter always has.
"""

from __future__ import annotations

import logging
from _tracemalloc import is_tracing

from polly.records import record

log = logging.getLogger(__name__)


class TraceRunningError(RuntimeError):
    """A trace is already running; the message says when it ends."""


@record
class AllocationGrowth:
    where: str  # the call path (see polly.allocation_trace)
    size_change: int
    count_change: int


def tracing() -> bool:
    return is_tracing()


# Who asked for tracing: tracemalloc is on exactly while someone still asks (or it was on before
# Polly first asked: then Polly never stops it). On costs roughly 10x on allocation-heavy code.
CHECKPOINTS = "checkpoints"  # /mem checkpoint trace:true, until trace:false
TIMED_TRACE = "trace"  # /mem trace, until it ends
_requests: set[str] = set()
_started_here = False


def request_tracing(requester: str, enabled: bool, frames: int = 1) -> None:
    """Ask for allocation tracing (keeping `frames` frames), or take the request back; tracemalloc
    stops when the last request is taken back, unless it ran before Polly asked. tracemalloc (72 KiB)
    is imported only to start or stop it: a bot that never traces, closing, does not load it."""
    global _started_here
    if enabled:
        _requests.add(requester)
        if not is_tracing():
            import tracemalloc

            tracemalloc.start(frames)
            _started_here = True
            log.warning("tracemalloc started (%d frames): allocations are slower until it is turned off", frames)
        return
    _requests.discard(requester)
    if not _requests and _started_here:
        _started_here = False
        if is_tracing():
            import tracemalloc

            tracemalloc.stop()
            log.info("tracemalloc stopped")


def tracing_requested(requester: str) -> bool:
    return requester in _requests


def set_tracing(enabled: bool, frames: int = 1) -> None:
    """Tracing for the next checkpoints (`/mem checkpoint trace:`), as a request among others."""
    request_tracing(CHECKPOINTS, enabled, frames)
