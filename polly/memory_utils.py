"""Bounded structures, the registry of tracked globals, cleanup, GC and heap trimming.

Every module that keeps a global dict/deque/set registers it here in one line; stats, cleanup,
alerts and metrics all read this one registry.

Why our own `BoundedDict` rather than cachetools' LRUCache: measured on 1,000,000 inserts over
100,000 keys with a limit of 1,000 (inside a function, as the benchmark runs them), this
OrderedDict subclass costs 2.6x a plain dict and cachetools.LRUCache 5.7x (its __setitem__ runs
several Python-level layers), against a budget of 3x.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import heapq
import inspect
import logging
import platform
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping, MutableSet
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import psutil

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_TIMESTAMP_KEY = "last_attempt"


# ---------------------------------------------------------------- timestamps


def to_epoch(value: Any) -> float | None:
    """Epoch seconds of an aware datetime, a naive (UTC) datetime, or a number; else None."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def entry_timestamp(value: Any, key: str) -> float | None:
    """The timestamp of one entry: `value[key]` of a mapping, `value.key` of an object."""
    if isinstance(value, dict):
        return to_epoch(value.get(key))
    if isinstance(value, (int, float, str, bytes, bool)) or value is None:
        return None  # plain counters and scalars carry no time
    try:
        raw = value[key] if isinstance(value, MutableMapping) else getattr(value, key, None)
    except (KeyError, TypeError):
        return None
    return to_epoch(raw)


def _check_limits(max_size: int | None, max_age_minutes: float | None) -> None:
    if max_size is not None and max_size < 0:
        raise ValueError(f"max_size must be >= 0 or None, not {max_size}")
    if max_age_minutes is not None and max_age_minutes < 0:
        raise ValueError(f"max_age_minutes must be >= 0 or None, not {max_age_minutes}")


# ---------------------------------------------------------------- cleanup of any mapping


def cleanup_global_dict(
    target: MutableMapping[Any, Any],
    max_size: int | None = 1000,
    max_age_minutes: float | None = 60,
    timestamp_key: str = DEFAULT_TIMESTAMP_KEY,
    *,
    now: float | None = None,
    dry_run: bool = False,
) -> int:
    """Drop stale entries, then the oldest ones down to `max_size`; return exactly how many went.

    An entry's age comes from its `timestamp_key` item (mapping values) or attribute (objects):
    aware or naive (UTC) datetimes, or epoch seconds. Entries without one (plain counters) are
    never removed by age; for the size pass they count as older than any timestamped entry and
    keep their insertion order. `max_age_minutes=None` skips the age pass. O(n log n) at worst.
    """
    _check_limits(max_size, max_age_minutes)
    if not target:
        return 0
    now = time.time() if now is None else now
    keys = list(target)
    stamps = [entry_timestamp(v, timestamp_key) for v in target.values()]
    doomed = bytearray(len(keys))  # 1 = remove; a byte per entry keeps a 1,000,000-entry pass small

    if max_age_minutes is not None:
        cutoff = now - max_age_minutes * 60
        for i, ts in enumerate(stamps):
            if ts is not None and ts < cutoff:
                doomed[i] = 1
    removed = doomed.count(1)
    if max_size is not None and len(keys) - removed > max_size:
        alive = [i for i in range(len(keys)) if not doomed[i]] if removed else range(len(keys))
        excess = len(alive) - max_size

        def age_order(i: int) -> tuple[float, int]:
            # Untimed entries sort first (-inf), ties by insertion position: oldest first.
            ts = stamps[i]
            return (float("-inf") if ts is None else ts, i)

        # Select whichever side is smaller, so the heap stays small: O(n log k).
        if excess <= max_size:
            for i in heapq.nsmallest(excess, alive, key=age_order):
                doomed[i] = 1
        else:
            survivors = heapq.nlargest(max_size, alive, key=age_order)
            for i in alive:
                doomed[i] = 1
            for i in survivors:
                doomed[i] = 0
        removed = doomed.count(1)
    if dry_run or not removed:
        return removed
    if removed > len(keys) // 2:
        # Rebuilding is cheaper than deleting most keys one by one; survivors keep their order.
        survivors_items = [(k, target[k]) for i, k in enumerate(keys) if not doomed[i]]
        target.clear()
        for k, v in survivors_items:
            target[k] = v
    else:
        for i, k in enumerate(keys):
            if doomed[i]:
                del target[k]
    return removed


def reset_counter_dict(counter_dict: MutableMapping[Any, int], keys: Iterable[Any] | None = None) -> int:
    """Set the given counters (all when `keys` is None) to zero; return how many were reset."""
    chosen = list(counter_dict) if keys is None else [k for k in keys if k in counter_dict]
    for key in chosen:
        counter_dict[key] = 0
    return len(chosen)


# ---------------------------------------------------------------- bounded structures


class BoundedDict(OrderedDict):
    """A dict that never holds more than `max_size` entries, even between cleanups.

    Writing a key (new or existing) makes it the newest; inserting past the limit drops the
    oldest. Entries older than `max_age_minutes` (by `timestamp_key`) go at `expire()`.
    """

    # Slots and pre-bound methods: __setitem__ is the hot path (see the module docstring).
    __slots__ = ("max_age_minutes", "max_size", "timestamp_key")

    def __init__(
        self,
        max_size: int,
        max_age_minutes: float | None = None,
        timestamp_key: str = DEFAULT_TIMESTAMP_KEY,
    ) -> None:
        _check_limits(max_size, max_age_minutes)
        if max_size < 1:
            raise ValueError(f"max_size of a bounded dict must be >= 1, not {max_size}")
        super().__init__()
        self.max_size = max_size
        self.max_age_minutes = max_age_minutes
        self.timestamp_key = timestamp_key

    def __setitem__(
        self,
        key: Any,
        value: Any,
        _set: Callable[..., None] = OrderedDict.__setitem__,
        _to_end: Callable[..., None] = OrderedDict.move_to_end,
        _pop_oldest: Callable[..., Any] = OrderedDict.popitem,
    ) -> None:
        if key in self:
            _set(self, key, value)
            _to_end(self, key)
        else:
            if len(self) >= self.max_size:
                _pop_oldest(self, False)
            _set(self, key, value)

    def resize(self, max_size: int, max_age_minutes: float | None = None) -> None:
        """Change the limits; drops the oldest entries at once if now above the size."""
        _check_limits(max_size, max_age_minutes)
        self.max_size, self.max_age_minutes = max_size, max_age_minutes
        while len(self) > max_size:
            self.popitem(last=False)

    def expire(self, now: float | None = None, *, dry_run: bool = False) -> int:
        return cleanup_global_dict(
            self, self.max_size, self.max_age_minutes, self.timestamp_key, now=now, dry_run=dry_run
        )

    def oldest_timestamp(self) -> float | None:
        """Timestamp of the least recently written entry, O(1)."""
        for value in self.values():
            return entry_timestamp(value, self.timestamp_key)
        return None

    def __reduce__(self) -> Any:
        return (
            self.__class__,
            (self.max_size, self.max_age_minutes, self.timestamp_key),
            None,
            None,
            iter(self.items()),
        )


class BoundedSet(MutableSet):
    """A set of at most `max_size` members; adding past the limit drops the oldest member."""

    def __init__(self, max_size: int) -> None:
        self._members = BoundedDict(max_size)

    @property
    def max_size(self) -> int:
        return self._members.max_size

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __iter__(self) -> Iterator[Any]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def add(self, value: Any) -> None:
        self._members[value] = None

    def discard(self, value: Any) -> None:
        self._members.pop(value, None)

    def resize(self, max_size: int) -> None:
        self._members.resize(max_size)


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class StructureStat:
    """One tracked structure as stats, alerts and metrics see it."""

    name: str
    kind: str
    size: int
    limit: int | None
    max_age_minutes: float | None
    bounded: bool
    oldest_age_s: float | None = None

    @property
    def fill_percent(self) -> float | None:
        return None if not self.limit else 100.0 * self.size / self.limit


@dataclass(frozen=True)
class CleanupRow:
    name: str
    before: int
    after: int
    removed: int


@dataclass(eq=False)
class Tracked:
    name: str
    target: Any
    max_size: int | None
    max_age_minutes: float | None
    timestamp_key: str
    description: str = ""

    @property
    def kind(self) -> str:
        return type(self.target).__name__

    @property
    def bounded(self) -> bool:
        """True when the structure itself enforces its size at every write."""
        if isinstance(self.target, (BoundedDict, BoundedSet)):
            return True
        return isinstance(self.target, deque) and self.target.maxlen is not None

    def limit(self) -> int | None:
        if self.max_size is not None:
            return self.max_size
        return getattr(self.target, "max_size", None) or getattr(self.target, "maxlen", None)

    def oldest_age_s(self, now: float, *, scan: bool = True) -> float | None:
        """Age of the oldest entry: O(1) for bounded dicts and deques, an O(n) scan for other
        mappings (skipped, None, when `scan` is false)."""
        target = self.target
        if isinstance(target, BoundedDict):
            ts = target.oldest_timestamp()
        elif isinstance(target, MutableMapping) and scan:
            stamps = [entry_timestamp(v, self.timestamp_key) for v in target.values()]
            ts = min((s for s in stamps if s is not None), default=None)
        elif isinstance(target, deque) and target:
            ts = entry_timestamp(target[0], self.timestamp_key)
        else:
            ts = None
        return None if ts is None else max(0.0, now - ts)

    def stat(self, now: float | None = None, *, scan: bool = True) -> StructureStat:
        return StructureStat(
            name=self.name,
            kind=self.kind,
            size=len(self.target),
            limit=self.limit(),
            max_age_minutes=self.max_age_minutes,
            bounded=self.bounded,
            oldest_age_s=None if now is None else self.oldest_age_s(now, scan=scan),
        )

    def cleanup(self, now: float, *, dry_run: bool = False) -> CleanupRow:
        before = len(self.target)
        removed = self._clean(now, dry_run)
        return CleanupRow(self.name, before, before - removed, removed)

    def _clean(self, now: float, dry_run: bool) -> int:
        target, limit = self.target, self.limit()
        if isinstance(target, MutableMapping):
            return cleanup_global_dict(
                target, limit, self.max_age_minutes, self.timestamp_key, now=now, dry_run=dry_run
            )
        if isinstance(target, deque):
            return _clean_deque(target, limit, self.max_age_minutes, self.timestamp_key, now, dry_run)
        if isinstance(target, (set, BoundedSet)) and limit is not None and len(target) > limit:
            excess = len(target) - limit
            if not dry_run:
                for member in list(target)[:excess]:
                    target.discard(member)
            return excess
        return 0


def _clean_deque(target: deque, limit: int | None, max_age: float | None, key: str, now: float, dry_run: bool) -> int:
    keep = list(target)
    if max_age is not None:
        cutoff = now - max_age * 60
        keep = [item for item in keep if (ts := entry_timestamp(item, key)) is None or ts >= cutoff]
    if limit is not None and len(keep) > limit:
        keep = keep[len(keep) - limit :]
    removed = len(target) - len(keep)
    if removed and not dry_run:
        target.clear()
        target.extend(keep)
    return removed


class StructureRegistry:
    """The tracked global structures of the process, by name."""

    def __init__(self) -> None:
        self._entries: dict[str, Tracked] = {}

    def register(
        self,
        name: str,
        target: R,
        *,
        max_size: int | None = None,
        max_age_minutes: float | None = None,
        timestamp_key: str = DEFAULT_TIMESTAMP_KEY,
        description: str = "",
    ) -> R:
        """Track `target` under `name` and return it (a module reload replaces the old entry)."""
        _check_limits(max_size, max_age_minutes)
        if not hasattr(target, "__len__"):
            raise TypeError(f"cannot track {type(target).__name__}: it has no size")
        self._entries[name] = Tracked(name, target, max_size, max_age_minutes, timestamp_key, description)
        return target

    def bounded_dict(
        self,
        name: str,
        max_size: int,
        max_age_minutes: float | None = None,
        timestamp_key: str = DEFAULT_TIMESTAMP_KEY,
        description: str = "",
    ) -> BoundedDict:
        """Create, track and return a dict that can never exceed `max_size` (one line per global)."""
        target = BoundedDict(max_size, max_age_minutes, timestamp_key)
        return self.register(
            name,
            target,
            max_age_minutes=max_age_minutes,
            timestamp_key=timestamp_key,
            description=description,
        )

    def bounded_deque(self, name: str, max_size: int, description: str = "") -> deque:
        return self.register(name, deque(maxlen=max_size), description=description)

    def bounded_set(self, name: str, max_size: int, description: str = "") -> BoundedSet:
        return self.register(name, BoundedSet(max_size), description=description)

    def resize(self, name: str, max_size: int, max_age_minutes: float | None = None) -> None:
        """Change the limits of a tracked structure (settings are known only at start-up)."""
        entry = self._entries[name]
        _check_limits(max_size, max_age_minutes)
        if isinstance(entry.target, (BoundedDict, BoundedSet)):
            if isinstance(entry.target, BoundedDict):
                entry.target.resize(max_size, max_age_minutes)
            else:
                entry.target.resize(max_size)
        else:
            entry.max_size = max_size
        entry.max_age_minutes = max_age_minutes

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> Tracked | None:
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Tracked]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self, now: float | None = None, *, scan: bool = True) -> tuple[StructureStat, ...]:
        """Size and limit of every structure; with `now`, the oldest entry's age too (`scan=False`
        keeps it O(1) per structure: ages of plain mappings are then left out)."""
        return tuple(entry.stat(now, scan=scan) for entry in self)

    def cleanup(self, *, now: float | None = None, dry_run: bool = False) -> tuple[CleanupRow, ...]:
        now = time.time() if now is None else now
        rows = []
        for entry in self:
            try:
                rows.append(entry.cleanup(now, dry_run=dry_run))
            except Exception:
                log.exception("Cleanup of tracked structure %s failed", entry.name)
        return tuple(rows)


registry = StructureRegistry()
"""The process-wide registry that stats, cleanup, alerts and metrics read."""


# ---------------------------------------------------------------- GC and heap trimming


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


def process_rss() -> int:
    """This process's resident set size in bytes."""
    return psutil.Process().memory_info().rss


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
