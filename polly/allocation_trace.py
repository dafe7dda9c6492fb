"""What allocation traces find: allocation sites with their call paths, and time-boxed traces
that stop by themselves (loaded with the first trace or traced checkpoint; the switch is
`polly.allocations`).

A call path reads from the innermost frame of the bot's own code outwards, so
`cogs/polls.py:40 ← bot/app.py:12 (allocated in discord/state.py:685)` says which of our lines
made discord.py allocate; paths are shortened to the package.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from _tracemalloc import is_tracing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from polly.allocations import TIMED_TRACE, AllocationGrowth, TraceRunningError, request_tracing
from polly.off_loop import off_loop

if TYPE_CHECKING:
    import tracemalloc

log = logging.getLogger(__name__)

TRACEMALLOC_TOP = 200
PATH_FRAMES_SHOWN = 4
OWN_PACKAGES = ("bot", "cogs", "polly")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=4096)
def short_path(filename: str) -> str:
    """`discord/state.py` for site-packages, `polly/ext/cog.py` for ours, the last two parts else."""
    path = Path(filename)
    if "site-packages" in path.parts:
        return "/".join(path.parts[path.parts.index("site-packages") + 1 :])
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except (ValueError, OSError):
        return "/".join(path.parts[-2:])


def _is_own(frame: tracemalloc.Frame) -> bool:
    return short_path(frame.filename).split("/", 1)[0] in OWN_PACKAGES


def call_path(traceback: tracemalloc.Traceback) -> str:
    """Innermost own frame first, then its callers; the allocation site in brackets if elsewhere."""
    frames = list(reversed(traceback))  # tracemalloc lists the oldest frame first
    start = next((i for i, frame in enumerate(frames) if _is_own(frame)), 0)
    shown = [f"{short_path(f.filename)}:{f.lineno}" for f in frames[start : start + PATH_FRAMES_SHOWN]]
    text = " ← ".join(shown)
    if start > 0:
        site = frames[0]
        text += f" (allocated in {short_path(site.filename)}:{site.lineno})"
    return text


def _snapshot() -> tracemalloc.Snapshot:
    import tracemalloc

    ignored = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<unknown>")
    return tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, name) for name in ignored])


def allocation_summary() -> dict[str, list[int]]:
    """The top allocation sites by size, keyed by call path (runs in a thread)."""
    stats = _snapshot().statistics("traceback")[:TRACEMALLOC_TOP]
    summary: dict[str, list[int]] = {}
    for stat in stats:
        where = call_path(stat.traceback)
        size, count = summary.get(where, [0, 0])
        summary[where] = [size + stat.size, count + stat.count]
    return summary


def growth_between(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 10
) -> tuple[AllocationGrowth, ...]:
    grown: dict[str, list[int]] = {}
    for diff in after.compare_to(before, "traceback"):
        if diff.size_diff > 0:
            size, count = grown.get(call_path(diff.traceback), [0, 0])
            grown[call_path(diff.traceback)] = [size + diff.size_diff, count + diff.count_diff]
    ranked = sorted(grown.items(), key=lambda item: -item[1][0])[:top]
    return tuple(AllocationGrowth(where, size, count) for where, (size, count) in ranked)


@dataclass
class TraceSession:
    """One time-boxed trace: started by someone, ends by itself."""

    who: str
    started_at: datetime
    ends_at: datetime
    frames: int
    baseline: tracemalloc.Snapshot | None = field(default=None, repr=False)

    @classmethod
    def start(cls, who: str, now: datetime, minutes: int, frames: int) -> TraceSession:
        request_tracing(TIMED_TRACE, True, frames)
        session = cls(who, now, now + timedelta(minutes=minutes), frames)
        session.baseline = _snapshot()  # nearly empty when tracing just started
        return session

    def finish(self, top: int = 10) -> tuple[AllocationGrowth, ...]:
        """What was allocated during the trace and is still held, by call path (runs in a thread)."""
        if self.baseline is None or not is_tracing():
            self.baseline = None
            request_tracing(TIMED_TRACE, False)
            return ()
        final, baseline, self.baseline = _snapshot(), self.baseline, None
        # Before comparing: tracing slows every allocation the comparison makes (it stays on if
        # /mem checkpoint trace:true asked for it too).
        request_tracing(TIMED_TRACE, False)
        return growth_between(baseline, final, top)

    def cancel(self) -> None:
        """End the trace with no results: its request for tracing is taken back."""
        self.baseline = None
        request_tracing(TIMED_TRACE, False)


TraceReport = Callable[[TraceSession, tuple[AllocationGrowth, ...]], Awaitable[None]]


class TraceSlot:
    """The time-boxed trace of a memory layer: one at a time, ended by its own timer.

    The timer is the event loop's (`call_later`), held here, not by the cog that started the trace:
    whatever happens to the caller, the trace ends on time and tracemalloc goes back to how it was
    found; `report` gets the results (its failure is logged, never raised)."""

    def __init__(self, clock: Callable[[], datetime], frames: int) -> None:
        self.clock = clock
        self.frames = frames
        self.session: TraceSession | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None

    def start(self, who: str, minutes: int, report: TraceReport) -> TraceSession:
        """Start tracing allocations for `minutes`; a TraceRunningError says when the running one ends."""
        if self.session is not None:
            raise TraceRunningError(
                f"A trace started by {self.session.who} is running until {self.session.ends_at:%H:%M} UTC: "
                "its results go to the alert channel then; start another after that."
            )
        loop = asyncio.get_running_loop()
        self.session = session = TraceSession.start(who, self.clock(), minutes, self.frames)
        self._timer = loop.call_later(minutes * 60, self._time_is_up, session, report)
        return session

    def _time_is_up(self, session: TraceSession, report: TraceReport) -> None:
        self._timer = None
        if self.session is session:
            self._ending = asyncio.get_running_loop().create_task(self._end(report), name="polly-trace-end")

    async def _end(self, report: TraceReport) -> None:
        finished = await self.finish()
        if finished is None:
            return
        try:
            await report(*finished)
        except Exception:
            log.exception("The allocation trace ended but its results could not be reported")
        finally:
            self._ending = None

    async def finish(self) -> tuple[TraceSession, tuple[AllocationGrowth, ...]] | None:
        """End the running trace now; its top allocation growth by call path (None if none ran)."""
        session, self.session = self.session, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if session is None:
            return None
        return session, await off_loop(session.finish)

    def cancel(self) -> TraceSession | None:
        """Stop the running trace without results (the memory layer is closing); tracemalloc is
        turned off again if the trace turned it on."""
        session, self.session = self.session, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ending is not None:
            self._ending.cancel()
            self._ending = None
        if session is not None:
            session.cancel()
        return session
