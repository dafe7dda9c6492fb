"""Garbage collection, heap trimming and the cleanup of every tracked structure."""

from __future__ import annotations

import gc
import logging
import time
from typing import TYPE_CHECKING

from polly.heap_trim import TrimReport, malloc_trim
from polly.process_stats import process_rss
from polly.records import record
from polly.registry import CleanupRow, StructureRegistry, registry

if TYPE_CHECKING:
    from polly.rss_breakdown import RssBreakdown

log = logging.getLogger(__name__)


@record
class GCReport:
    generation: int
    collected: int
    pause_ms: float
    rss_before: int
    rss_after: int
    trimmed: bool


def force_garbage_collection(generation: int = 2, *, trim: bool = True) -> GCReport:
    """Collect `generation`, then (`trim`) give freed heap back to the OS (glibc only).

    A full collection (generation 2) blocks the event loop for as long as it takes; the report's
    `pause_ms` makes that visible. The monitor trims apart, off the loop (`polly.heap_trim`).
    """
    if generation not in (0, 1, 2):
        raise ValueError(f"generation must be 0, 1 or 2, not {generation}")
    rss_before = process_rss()
    start = time.perf_counter()
    collected = gc.collect(generation)
    trimmed = False
    if trim and malloc_trim is not None:
        malloc_trim(0)
        trimmed = True
    pause_ms = (time.perf_counter() - start) * 1000
    return GCReport(generation, collected, pause_ms, rss_before, process_rss(), trimmed)


@record
class CleanupReport:
    rows: tuple[CleanupRow, ...]
    gc: GCReport | None
    dry_run: bool
    rss_before: int | None = None  # around the whole cleanup; None for a dry run
    rss_after: int | None = None
    trim: TrimReport | None = None  # malloc_trim after the collection (manual cleanups)
    # Where the RSS was before the cleanup, after the collection and after the trim (manual cleanups).
    breakdowns: tuple[RssBreakdown | None, ...] = ()

    @property
    def removed(self) -> int:
        return sum(row.removed for row in self.rows)


def cleanup_background_tasks_memory(
    dry_run: bool = False,
    *,
    gc_generation: int | None = 2,
    target_registry: StructureRegistry | None = None,
    now: float | None = None,
    trim: bool = True,
) -> CleanupReport:
    """Clean every tracked structure by its own limits, then collect garbage (and `trim`).

    `dry_run` reports what would be removed and changes nothing (no GC either).
    `gc_generation=None` skips the collection.
    """
    rss_before = None if dry_run else process_rss()
    rows = (target_registry or registry).cleanup(now=now, dry_run=dry_run)
    collect = not dry_run and gc_generation is not None
    report = force_garbage_collection(gc_generation, trim=trim) if collect and gc_generation is not None else None
    removed = sum(row.removed for row in rows)
    if dry_run:
        return CleanupReport(rows, None, dry_run=True)
    if removed:
        log.info("Cleanup removed %d entries from tracked structures", removed)
    rss_after = report.rss_after if report is not None else process_rss()
    return CleanupReport(rows, report, False, rss_before, rss_after)
