"""Decorators that tie memory work to function calls: cleanup after a call, profile of each call."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from polly import clock
from polly.gc_tools import cleanup_background_tasks_memory
from polly.process_stats import process_rss
from polly.records import record
from polly.registry import registry

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def memory_cleanup_decorator(
    cleanup_func: Callable[[], Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run `cleanup_func` (default: clean the tracked structures, no GC) after each call.

    Works on sync and async functions; the cleanup runs after the body, also when it raised,
    and never replaces the body's exception. An async `cleanup_func` is awaited in async code.
    """

    def default_cleanup() -> None:
        cleanup_background_tasks_memory(gc_generation=None)

    cleanup = cleanup_func or default_cleanup

    def run_sync_cleanup() -> Any:
        try:
            return cleanup()
        except Exception:
            log.exception("Cleanup after a decorated call failed")
            return None

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    return await func(*args, **kwargs)
                finally:
                    result = run_sync_cleanup()
                    if inspect.isawaitable(result):
                        try:
                            await result
                        except Exception:
                            log.exception("Cleanup after a decorated call failed")

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            finally:
                result = run_sync_cleanup()
                if inspect.iscoroutine(result):
                    result.close()
                    log.warning("Async cleanup %r cannot run after sync %s", cleanup, func.__qualname__)

        return sync_wrapper

    return decorate


# ---------------------------------------------------------------- memory_profile


@record(frozen=False)
class ProfileStats:
    calls: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    rss_delta_total: int = 0
    rss_delta_max: int = 0
    last_at: float = 0.0

    @property
    def mean_s(self) -> float:
        return self.total_s / self.calls if self.calls else 0.0

    @property
    def mean_rss_delta(self) -> float:
        return self.rss_delta_total / self.calls if self.calls else 0.0


def profile_snapshot() -> list[tuple[str, ProfileStats]]:
    """Every profiled function with a copy of its figures, the most time-consuming first."""
    rows = [(name, ProfileStats(**vars(stats))) for name, stats in profile_table.items()]
    return sorted(rows, key=lambda row: -row[1].total_s)


profile_table = registry.bounded_dict(
    "memory_profile", max_size=200, timestamp_key="last_at", description="memory_profile results per function"
)


def _record_profile(name: str, started: float, rss_before: int) -> None:
    duration = time.perf_counter() - started
    delta = process_rss() - rss_before
    stats = profile_table.get(name) or ProfileStats()
    stats.calls += 1
    stats.total_s += duration
    stats.max_s = max(stats.max_s, duration)
    stats.rss_delta_total += delta
    stats.rss_delta_max = max(stats.rss_delta_max, delta)
    stats.last_at = clock.timestamp()
    profile_table[name] = stats


def memory_profile(func: Callable[P, R]) -> Callable[P, R]:
    """Record the RSS change and duration of each call of `func` (sync or async) in `profile_table`."""
    name = f"{func.__module__}.{func.__qualname__}"

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            rss, started = process_rss(), time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                _record_profile(name, started, rss)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        rss, started = process_rss(), time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            _record_profile(name, started, rss)

    return wrapper
