"""Garbage collection, heap trimming and the cleanup of every tracked structure."""

from __future__ import annotations

import ctypes
import gc
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from polly.process_stats import process_rss
from polly.registry import CleanupRow, StructureRegistry, registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GCReport:
    generation: int
    collected: int
    pause_ms: float
    rss_before: int
    rss_after: int
    trimmed: bool


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def force_garbage_collection(generation: int = 2) -> GCReport:
    """Collect `generation`, then give freed heap back to the OS (glibc only).

    A full collection (generation 2) blocks the event loop for as long as it takes; the report's
    `pause_ms` makes that visible.
    """
    if generation not in (0, 1, 2):
        raise ValueError(f"generation must be 0, 1 or 2, not {generation}")
    rss_before = process_rss()
    start = time.perf_counter()
    collected = gc.collect(generation)
    trimmed = False
    if _malloc_trim is not None:
        _malloc_trim(0)
        trimmed = True
    pause_ms = (time.perf_counter() - start) * 1000
    return GCReport(generation, collected, pause_ms, rss_before, process_rss(), trimmed)


@dataclass(frozen=True)
class CleanupReport:
    rows: tuple[CleanupRow, ...]
    gc: GCReport | None
    dry_run: bool
    rss_before: int | None = None  # around the whole cleanup; None for a dry run
    rss_after: int | None = None

    @property
    def removed(self) -> int:
        return sum(row.removed for row in self.rows)


def cleanup_background_tasks_memory(
    dry_run: bool = False,
    *,
    gc_generation: int | None = 2,
    target_registry: StructureRegistry | None = None,
    now: float | None = None,
) -> CleanupReport:
    """Clean every tracked structure by its own limits, then collect garbage.

    `dry_run` reports what would be removed and changes nothing (no GC either).
    `gc_generation=None` skips the collection.
    """
    rss_before = None if dry_run else process_rss()
    rows = (target_registry or registry).cleanup(now=now, dry_run=dry_run)
    report = None if dry_run or gc_generation is None else force_garbage_collection(gc_generation)
    removed = sum(row.removed for row in rows)
    if dry_run:
        return CleanupReport(rows, None, dry_run=True)
    if removed:
        log.info("Cleanup removed %d entries from tracked structures", removed)
    rss_after = report.rss_after if report is not None else process_rss()
    return CleanupReport(rows, report, False, rss_before, rss_after)
