"""Cleanups of one memory layer: the automatic one of a tick and the manual one of /mem cleanup.

One at a time (a second manual cleanup is refused, saying who runs the first; an automatic one
due meanwhile is skipped). The steps are measured apart: the structures, the collection (its
pause is the event loop's, said in the reply), and `malloc_trim` off the loop (`polly.heap_trim`);
for a manual cleanup, where the RSS is before, after the collection and after the trim, so the
reply says what each step gave back.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from polly.config import Settings
from polly.gc_tools import CleanupReport, cleanup_background_tasks_memory, force_garbage_collection
from polly.heap_trim import HeapTrimmer
from polly.history import HistoryRecorder
from polly.memory_optimizer import MemoryMonitor
from polly.records import replace
from polly.registry import StructureRegistry


class CleanupRunningError(RuntimeError):
    """A cleanup is already running; the message says who started it and when."""


class Cleanups:
    def __init__(
        self, settings: Settings, structures: StructureRegistry, monitor: MemoryMonitor, history: HistoryRecorder
    ) -> None:
        self.settings = settings
        self.structures = structures
        self.monitor = monitor
        self.history = history
        self.trimmer = HeapTrimmer(monitor.clock)  # malloc_trim: off the loop, at most one per minute
        self.owner: tuple[str, datetime] | None = None  # who runs the manual cleanup, since when

    def ensure_none_running(self) -> None:
        """Raise CleanupRunningError naming who started the running cleanup, if one runs."""
        if self.owner is not None:
            who, since = self.owner
            raise CleanupRunningError(
                f"A cleanup is already running (started by {who} at {since:%H:%M:%S} UTC): "
                "wait for it to finish, then run /mem cleanup again."
            )

    async def automatic(self, now: datetime) -> CleanupReport:
        report = cleanup_background_tasks_memory(
            gc_generation=self.settings.memory_gc_generation,
            target_registry=self.structures,
            now=now.timestamp(),
            trim=False,
        )
        return replace(report, trim=await self.trimmer.trim())

    async def manual(self, who: str, *, dry_run: bool, gc_generation: int = 2) -> CleanupReport:
        """Clean every tracked structure, collect garbage, trim the heap; one caller at a time."""
        self.ensure_none_running()
        self.owner = (who, self.monitor.clock())
        try:
            now = self.monitor.clock().timestamp()
            report = cleanup_background_tasks_memory(
                dry_run=dry_run, gc_generation=None, target_registry=self.structures, now=now
            )
            await asyncio.sleep(0)  # let the bot breathe between the cleanup and a full collection
            if dry_run:
                return report
            before = self.monitor.breakdown_now()
            collection = force_garbage_collection(gc_generation, trim=False)
            after_gc = self.monitor.breakdown_now()
            trim = await self.trimmer.trim()
            after = self.monitor.breakdown_now() if trim.ran else after_gc
            self.history.note_cleanup(self.monitor.clock(), manual=True)
            rss_after = trim.rss_after if trim.rss_after is not None else collection.rss_after
            return replace(report, gc=collection, rss_after=rss_after, trim=trim, breakdowns=(before, after_gc, after))
        finally:
            self.owner = None
