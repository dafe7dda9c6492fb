"""Allocation tracing with tracemalloc: on and off, and a summary of the top allocation sites."""

from __future__ import annotations

import logging
import tracemalloc

log = logging.getLogger(__name__)

TRACEMALLOC_TOP_LINES = 200
TRACEMALLOC_FRAMES = 1


def tracing() -> bool:
    return tracemalloc.is_tracing()


def set_tracing(enabled: bool) -> None:
    """Turn allocation tracing on or off. On costs roughly 10x on allocation-heavy code."""
    if enabled and not tracemalloc.is_tracing():
        tracemalloc.start(TRACEMALLOC_FRAMES)
        log.warning("tracemalloc started: allocations are slower until it is turned off")
    elif not enabled and tracemalloc.is_tracing():
        tracemalloc.stop()
        log.info("tracemalloc stopped")


def allocation_summary() -> dict[str, list[int]]:
    """Top allocation sites by size from a filtered tracemalloc snapshot (runs in a thread)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<unknown>"),
        )
    )
    stats = snapshot.statistics("lineno")[:TRACEMALLOC_TOP_LINES]
    return {f"{s.traceback[0].filename}:{s.traceback[0].lineno}": [s.size, s.count] for s in stats}
