"""Reads where a sample's RSS is: the allocators' statistics now, composed with the sample's split."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from polly import allocator_stats
from polly.rss_breakdown import RssBreakdown, compose

if TYPE_CHECKING:
    from polly.samples import MemorySample

log = logging.getLogger(__name__)


class BreakdownReader:
    """The allocator is detected once (what is preloaded or linked does not change at runtime)."""

    def __init__(self, allocator: allocator_stats.Allocator | None = None) -> None:
        self.allocator = allocator

    def read(self, sample: MemorySample) -> RssBreakdown | None:
        """Where `sample`'s RSS is (None if reading failed: the sample goes on without it)."""
        try:
            if self.allocator is None:
                self.allocator = allocator_stats.detect_allocator()
            allocator = self.allocator
            return compose(
                sample.rss,
                sample.rss_anon,
                sample.rss_file,
                sample.rss_shmem,
                allocator_stats.read_pymalloc(allocator),
                allocator_stats.read_malloc(allocator),
                allocator,
            )
        except Exception:
            log.exception("Reading the allocators' statistics failed")
            return None
