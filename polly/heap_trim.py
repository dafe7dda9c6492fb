"""Giving freed heap back to the OS: glibc's `malloc_trim`, off the event loop and rate-limited.

`malloc_trim` walks every malloc arena and returns whole free pages (madvise); on a large heap
that takes a while, so it runs in a worker thread (ctypes releases the GIL for the call) and at
most once per `MIN_INTERVAL_S` of the process's clock, whoever asks (automatic and manual
cleanups alike). What it returned is measured (RSS before and after), never assumed.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime

from polly import clock as process_clock
from polly.formatting import format_duration
from polly.off_loop import off_loop
from polly.process_stats import process_rss
from polly.records import record

MIN_INTERVAL_S = 60.0


def load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim (None elsewhere: musl, macOS, Windows)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


malloc_trim = load_malloc_trim()


@record
class TrimReport:
    ran: bool
    note: str = ""  # why it did not run
    ms: float = 0.0
    rss_before: int | None = None
    rss_after: int | None = None

    @property
    def returned(self) -> int | None:
        """RSS the trim gave back (negative if RSS grew meanwhile: other threads allocate)."""
        if self.rss_before is None or self.rss_after is None:
            return None
        return self.rss_before - self.rss_after


class HeapTrimmer:
    """One per memory layer: at most one trim per `min_interval_s`, in a worker thread."""

    def __init__(
        self,
        clock: Callable[[], datetime] = process_clock.now,
        min_interval_s: float = MIN_INTERVAL_S,
        trim: Callable[[int], int] | None = malloc_trim,
    ) -> None:
        self.clock = clock
        self.min_interval_s = min_interval_s
        self._trim = trim
        self.last_at: datetime | None = None
        self.last: TrimReport | None = None  # the last trim that ran (what /mem explain recalls)

    async def trim(self) -> TrimReport:
        if self._trim is None:
            return TrimReport(False, "no malloc_trim here (glibc only)")
        now = self.clock()
        if self.last_at is not None:
            since = (now - self.last_at).total_seconds()
            if since < self.min_interval_s:
                wait = format_duration(self.min_interval_s)
                return TrimReport(
                    False, f"skipped: the last trim ran {format_duration(since)} ago; one runs at most every {wait}"
                )
        self.last_at = now  # before the await: a second caller meanwhile is refused
        before, started = process_rss(), time.perf_counter()
        await off_loop(self._trim, 0)
        report = TrimReport(True, "", (time.perf_counter() - started) * 1000, before, process_rss())
        self.last = report
        return report
