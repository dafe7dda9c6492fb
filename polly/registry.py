"""The registry of tracked global structures: stats, cleanup, alerts and metrics all read it.

Every module that keeps a global dict/deque/set registers it here in one line.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar

from polly import clock
from polly.bounded import (
    DEFAULT_TIMESTAMP_KEY,
    BoundedDict,
    BoundedSet,
    check_limits,
    cleanup_global_dict,
    entry_timestamp,
)
from polly.heap_sizes import estimate_container_bytes
from polly.records import record

log = logging.getLogger(__name__)

R = TypeVar("R")


@record(hot=True)  # one per tracked structure, each tick
class StructureStat:
    """One tracked structure as stats, alerts and metrics see it."""

    name: str
    kind: str
    size: int
    limit: int | None
    max_age_minutes: float | None
    bounded: bool
    oldest_age_s: float | None = None
    estimated_bytes: int | None = None  # sampled now and then (MEMORY_SIZE_ESTIMATE_MINUTES)
    failing: str | None = None  # why the structure could not report (its size is then unknown)

    @property
    def fill_percent(self) -> float | None:
        return None if not self.limit or self.failing else 100.0 * self.size / self.limit


@record
class CleanupRow:
    name: str
    before: int
    after: int
    removed: int


@record(frozen=False, eq=False)
class Tracked:
    name: str
    target: Any
    max_size: int | None
    max_age_minutes: float | None
    timestamp_key: str
    description: str = ""
    estimated_bytes: int | None = None

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
        """This structure's figures; one that cannot report is a `failing` stat, never an error."""
        try:
            size = len(self.target)
            return StructureStat(  # positional: built for every structure each tick
                self.name,
                self.kind,
                size,
                self.limit(),
                self.max_age_minutes,
                self.bounded,
                None if now is None else self.oldest_age_s(now, scan=scan),
                # an emptied structure's estimate is known without sampling
                self.estimated_bytes if size else sys.getsizeof(self.target, 0),
            )
        except Exception as exc:
            return StructureStat(self.name, self.kind, 0, None, self.max_age_minutes, self.bounded, failing=_why(exc))

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


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class StructureRegistry:
    """The tracked global structures of the process, by name."""

    def __init__(self) -> None:
        self._entries: dict[str, Tracked] = {}
        self._failing: set[str] = set()

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
        check_limits(max_size, max_age_minutes)
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
        check_limits(max_size, max_age_minutes)
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

    def estimate_sizes(self) -> None:
        """Re-estimate every structure's size from a sample of its entries (see polly.heap_sizes)."""
        for entry in self:
            try:
                entry.estimated_bytes = estimate_container_bytes(entry.target)
            except Exception:
                log.exception("Estimating the size of tracked structure %s failed", entry.name)

    def stats(self, now: float | None = None, *, scan: bool = True) -> tuple[StructureStat, ...]:
        """Size and limit of every structure; with `now`, the oldest entry's age too (`scan=False`
        keeps it O(1) per structure: ages of plain mappings are then left out). A structure that
        fails to report is logged when it starts failing and when it recovers."""
        stats = tuple(entry.stat(now, scan=scan) for entry in self)
        failing = {s.name: s.failing for s in stats if s.failing}
        for name in failing.keys() - self._failing:
            log.warning("Tracked structure %s cannot report its size (%s): skipped until it can", name, failing[name])
        for name in self._failing - failing.keys():
            log.info("Tracked structure %s reports again", name)
        self._failing = set(failing)
        return stats

    def cleanup(self, *, now: float | None = None, dry_run: bool = False) -> tuple[CleanupRow, ...]:
        now = clock.timestamp() if now is None else now
        rows = []
        for entry in self:
            try:
                rows.append(entry.cleanup(now, dry_run=dry_run))
            except Exception:
                log.exception("Cleanup of tracked structure %s failed", entry.name)
        return tuple(rows)


registry = StructureRegistry()
"""The process-wide registry that stats, cleanup, alerts and metrics read."""
