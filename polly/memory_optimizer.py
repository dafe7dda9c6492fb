"""MemoryMonitor: one consistent memory sample, its history and trend, and checkpoints.

psutil alone reports the host's numbers inside a container, which is wrong for "80 % of the
limit": the effective limit comes from the cgroup (v2 or v1) or `MEMORY_LIMIT_MB`, whichever is
smaller, else the host total.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
import resource
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import psutil
from sqlalchemy import delete, func, select

from polly.config import Settings
from polly.enhanced_database import Database, PoolStatus
from polly.formatting import MIB
from polly.memory_limit import CgroupReader, MemoryLimit, effective_limit
from polly.memory_utils import StructureRegistry, StructureStat, registry
from polly.models import MemoryCheckpoint

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# A fall of this fraction between two samples (a restart, a big cleanup) starts a new trend segment.
TREND_RESET_DROP = 0.10
TRACEMALLOC_TOP_LINES = 200
TRACEMALLOC_FRAMES = 1


class CheckpointError(ValueError):
    """A checkpoint request that cannot be honoured; the message is one sentence for the operator."""


async def measure_loop_lag() -> float:
    """Milliseconds one turn of the event loop takes right now (how long callbacks wait)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    turn = loop.create_future()
    loop.call_soon(turn.set_result, None)
    await turn
    return (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------- samples


@dataclass(frozen=True)
class MemorySample:
    """One consistent reading of the process, the system and the bot's own structures."""

    at: datetime
    rss: int
    vms: int
    uss: int | None
    pss: int | None
    swap: int | None
    peak_rss: int | None
    threads: int
    open_fds: int | None
    system_total: int
    system_available: int
    system_used: int
    system_percent: float
    limit: int
    limit_source: str
    gc_counts: tuple[int, int, int]
    gc_collections: tuple[int, int, int]
    structures: tuple[StructureStat, ...] = ()
    pool: PoolStatus | None = None
    loop_lag_ms: float | None = None
    gc_objects: int | None = None

    @property
    def percent_of_limit(self) -> float:
        return 100.0 * self.rss / self.limit if self.limit else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["percent_of_limit"] = round(self.percent_of_limit, 2)
        data["structures"] = [{**asdict(s), "fill_percent": s.fill_percent} for s in self.structures]
        data["pool"] = None if self.pool is None else self.pool.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemorySample:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["at"] = datetime.fromisoformat(values["at"])
        values["gc_counts"] = tuple(values.get("gc_counts") or (0, 0, 0))
        values["gc_collections"] = tuple(values.get("gc_collections") or (0, 0, 0))
        fields = StructureStat.__dataclass_fields__
        values["structures"] = tuple(
            StructureStat(**{k: v for k, v in s.items() if k in fields}) for s in values.get("structures", [])
        )
        if values.get("pool") is not None:
            values["pool"] = PoolStatus.from_dict(values["pool"])
        return cls(**values)


@dataclass(frozen=True)
class Trend:
    """RSS trend over the recent window (the segment after the last big drop)."""

    slope_mib_per_hour: float | None
    samples: int
    span_s: float
    seconds_to_threshold: float | None
    recent_rss: tuple[int, ...] = ()

    @property
    def rising(self) -> bool:
        return self.slope_mib_per_hour is not None and self.slope_mib_per_hour > 0


RssPoint = tuple[float, int]
"""(epoch seconds, RSS bytes): all the trend needs, kept compact so the history costs little."""


def rss_trend(
    points: Sequence[RssPoint],
    window_s: float,
    threshold_bytes: float | None = None,
    spark_points: int = 24,
) -> Trend:
    """Least-squares slope of RSS over `window_s`, starting after the last big drop.

    A restart or a large cleanup makes RSS fall at once; fitting across it would hide a leak
    that resumes after it, so the fit uses only the points since the last fall of more than
    TREND_RESET_DROP.
    """
    if not points:
        return Trend(None, 0, 0.0, None)
    newest = points[-1][0]
    window = []
    for point in reversed(points):  # newest first: stop at the window's edge, not the ring's
        if newest - point[0] > window_s:
            break
        window.append(point)
    window.reverse()
    start = 0
    for i in range(1, len(window)):
        if window[i][1] < window[i - 1][1] * (1 - TREND_RESET_DROP):
            start = i
    segment = window[start:]
    recent = tuple(p[1] for p in window[-spark_points:])
    span = segment[-1][0] - segment[0][0] if segment else 0.0
    if len(segment) < 3 or span <= 0:
        return Trend(None, len(segment), span, None, recent)
    t0 = segment[0][0]
    xs = [p[0] - t0 for p in segment]
    ys = [float(p[1]) for p in segment]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx if sxx else 0.0  # bytes per second
    eta = None
    if threshold_bytes is not None and slope > 0:
        eta = max(0.0, (threshold_bytes - ys[-1]) / slope)
    return Trend(slope * 3600 / MIB, n, span, eta, recent)


# ---------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    label: str
    created_at: datetime
    automatic: bool
    sample: MemorySample
    allocations: dict[str, list[int]] | None = None


@dataclass(frozen=True)
class StructureChange:
    name: str
    before: int | None
    after: int | None

    @property
    def change(self) -> int:
        return (self.after or 0) - (self.before or 0)


@dataclass(frozen=True)
class AllocationGrowth:
    where: str
    size_change: int
    count_change: int


@dataclass(frozen=True)
class CheckpointComparison:
    before: Checkpoint
    after: Checkpoint
    rss_change: int
    rss_change_percent: float
    uss_change: int | None
    uss_change_percent: float | None
    structures: tuple[StructureChange, ...]
    gc_objects_change: int | None
    pool_checked_out_change: int | None
    top_allocations: tuple[AllocationGrowth, ...] = ()

    @property
    def elapsed_s(self) -> float:
        return (self.after.created_at - self.before.created_at).total_seconds()


def _percent_change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return 100.0 * (after - before) / before


def compare_checkpoints(before: Checkpoint, after: Checkpoint, top: int = 10) -> CheckpointComparison:
    a, b = before.sample, after.sample
    sizes_a = {s.name: s.size for s in a.structures}
    sizes_b = {s.name: s.size for s in b.structures}
    names = list(dict.fromkeys([*sizes_a, *sizes_b]))
    structures = tuple(StructureChange(n, sizes_a.get(n), sizes_b.get(n)) for n in names)
    uss_change = None if a.uss is None or b.uss is None else b.uss - a.uss
    gc_change = None if a.gc_objects is None or b.gc_objects is None else b.gc_objects - a.gc_objects
    pool_change = None
    if a.pool is not None and b.pool is not None:
        pool_change = b.pool.checked_out - a.pool.checked_out
    allocations: tuple[AllocationGrowth, ...] = ()
    if before.allocations is not None and after.allocations is not None:
        growth = []
        for where, (size, count) in after.allocations.items():
            old_size, old_count = before.allocations.get(where, (0, 0))
            if size - old_size > 0:
                growth.append(AllocationGrowth(where, size - old_size, count - old_count))
        allocations = tuple(sorted(growth, key=lambda g: -g.size_change)[:top])
    return CheckpointComparison(
        before=before,
        after=after,
        rss_change=b.rss - a.rss,
        rss_change_percent=_percent_change(a.rss, b.rss) or 0.0,
        uss_change=uss_change,
        uss_change_percent=_percent_change(a.uss, b.uss),
        structures=structures,
        gc_objects_change=gc_change,
        pool_checked_out_change=pool_change,
        top_allocations=allocations,
    )


def _allocation_summary() -> dict[str, list[int]]:
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


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- the monitor


@dataclass
class MonitorHealth:
    """How the monitor loop itself is doing (rendered by /mem stats and /health)."""

    ticks: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_tick_at: datetime | None = None
    last_error: str | None = None
    backoff_factor: int = 1
    undelivered: int = 0


class MemoryMonitor:
    """Samples memory, keeps the history and trend, stores and compares checkpoints."""

    def __init__(
        self,
        settings: Settings,
        db: Database | None = None,
        *,
        structures: StructureRegistry | None = None,
        cgroup: CgroupReader | None = None,
        process: psutil.Process | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.structures = structures if structures is not None else registry
        self.cgroup = cgroup or CgroupReader()
        self.process = process or psutil.Process()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.history: deque[RssPoint] = deque(maxlen=settings.memory_history_size)
        self._latest: MemorySample | None = None
        self.health = MonitorHealth()
        self.checkpoints_count = 0
        self._full_info_denied = False
        self._cgroup_limit = self.cgroup.limit()  # a container's limit does not change at runtime
        self._memory_checkpoints: dict[str, Checkpoint] = {}  # used only without a database
        self._trend_cache: tuple[int, Trend] | None = None

    # -- sampling

    @property
    def latest(self) -> MemorySample | None:
        return self._latest

    def limit(self, host_total: int | None = None) -> MemoryLimit:
        total = host_total if host_total is not None else psutil.virtual_memory().total
        return effective_limit(self._cgroup_limit, self.settings.memory_limit_mb, total)

    def sample(self, loop_lag_ms: float | None = None, *, count_objects: bool = False) -> MemorySample:
        """Read everything once, append it to the history and return it."""
        sample = self.read(loop_lag_ms, count_objects=count_objects)
        self._latest = sample
        self.history.append((sample.at.timestamp(), sample.rss))
        return sample

    def read(self, loop_lag_ms: float | None = None, *, count_objects: bool = False) -> MemorySample:
        """One sample, not recorded in the history."""
        proc = self.process
        with proc.oneshot():
            mem, uss, pss, swap = self._process_memory()
            threads = proc.num_threads()
            try:
                fds: int | None = proc.num_fds()
            except (psutil.AccessDenied, AttributeError):
                fds = None
        vm = psutil.virtual_memory()
        limit = self.limit(vm.total)
        pool = self.db.get_pool_status() if self.db is not None else None
        stats = gc.get_stats()
        at = self.clock()
        return MemorySample(
            at=at,
            rss=mem.rss,
            vms=mem.vms,
            uss=uss,
            pss=pss,
            swap=swap,
            peak_rss=_peak_rss(),
            threads=threads,
            open_fds=fds,
            system_total=vm.total,
            system_available=vm.available,
            system_used=vm.total - vm.available,
            system_percent=vm.percent,
            limit=limit.bytes,
            limit_source=limit.source,
            gc_counts=gc.get_count(),
            gc_collections=tuple(s["collections"] for s in stats),  # type: ignore[arg-type]
            structures=self.structures.stats(at.timestamp(), scan=False),  # O(1) each: every tick
            pool=pool,
            loop_lag_ms=loop_lag_ms,
            gc_objects=len(gc.get_objects()) if count_objects else None,
        )

    def _process_memory(self) -> tuple[Any, int | None, int | None, int | None]:
        if not self._full_info_denied:
            try:
                full = self.process.memory_full_info()
                return full, full.uss, getattr(full, "pss", None), getattr(full, "swap", None)
            except psutil.AccessDenied:
                # Some hardened hosts forbid /proc/<pid>/smaps; RSS is still readable.
                self._full_info_denied = True
                log.warning("USS/PSS/swap are not readable here (access denied); reporting RSS only")
        return self.process.memory_info(), None, None, None

    def trend(self) -> Trend:
        """The RSS trend over MEMORY_TREND_WINDOW_MINUTES, towards ALERT_MEMORY_PERCENT of the limit."""
        latest = self.latest
        if latest is None:
            return Trend(None, 0, 0.0, None)
        key = id(latest)
        if self._trend_cache is not None and self._trend_cache[0] == key:
            return self._trend_cache[1]
        threshold = latest.limit * self.settings.alert_memory_percent / 100
        trend = rss_trend(self.history, self.settings.memory_trend_window_minutes * 60, threshold)
        self._trend_cache = (key, trend)
        return trend

    # -- tracemalloc

    @property
    def tracing(self) -> bool:
        return tracemalloc.is_tracing()

    def set_tracing(self, enabled: bool) -> None:
        """Turn allocation tracing on or off. On costs roughly 10x on allocation-heavy code."""
        if enabled and not tracemalloc.is_tracing():
            tracemalloc.start(TRACEMALLOC_FRAMES)
            log.warning("tracemalloc started: allocations are slower until it is turned off")
        elif not enabled and tracemalloc.is_tracing():
            tracemalloc.stop()
            log.info("tracemalloc stopped")

    # -- checkpoints

    async def checkpoint(self, label: str | None = None, *, automatic: bool = False) -> Checkpoint:
        """Store a sample (and an allocation summary when tracing) under a unique label."""
        now = self.clock()
        if label is None:
            label = base = ("auto " if automatic else "") + now.strftime("%Y-%m-%d %H:%M:%S UTC")
            suffix = 1
            while await self.get_checkpoint(label) is not None:  # two in the same second
                suffix += 1
                label = f"{base} #{suffix}"
        label = label.strip()
        if not label or len(label) > 100:
            raise CheckpointError("A checkpoint label must be 1 to 100 characters long.")
        if await self.get_checkpoint(label) is not None:
            raise CheckpointError(f"A checkpoint named '{label}' already exists: choose another label.")
        sample = self.read(self.latest.loop_lag_ms if self.latest else None, count_objects=True)
        allocations = await asyncio.to_thread(_allocation_summary) if self.tracing else None
        checkpoint = Checkpoint(label, sample.at, automatic, sample, allocations)
        await self._store(checkpoint)
        return checkpoint

    async def _store(self, checkpoint: Checkpoint) -> None:
        keep = self.settings.memory_checkpoint_retention
        if self.db is None:
            self._memory_checkpoints[checkpoint.label] = checkpoint
            while len(self._memory_checkpoints) > keep:
                self._memory_checkpoints.pop(next(iter(self._memory_checkpoints)))
            self.checkpoints_count = len(self._memory_checkpoints)
            return
        async with self.db.session_scope() as session:
            session.add(
                MemoryCheckpoint(
                    label=checkpoint.label,
                    created_at=checkpoint.created_at,
                    automatic=checkpoint.automatic,
                    sample=checkpoint.sample.to_dict(),
                    allocations=checkpoint.allocations,
                )
            )
            await session.flush()
            newest = select(MemoryCheckpoint.id).order_by(MemoryCheckpoint.id.desc()).limit(keep)
            await session.execute(delete(MemoryCheckpoint).where(MemoryCheckpoint.id.not_in(newest)))
            self.checkpoints_count = await session.scalar(select(func.count(MemoryCheckpoint.id))) or 0

    async def refresh_checkpoint_count(self) -> int:
        if self.db is not None:
            async with self.db.session_scope() as session:
                self.checkpoints_count = await session.scalar(select(func.count(MemoryCheckpoint.id))) or 0
        return self.checkpoints_count

    async def get_checkpoint(self, label: str) -> Checkpoint | None:
        if self.db is None:
            return self._memory_checkpoints.get(label)
        async with self.db.session_scope() as session:
            row = await session.scalar(select(MemoryCheckpoint).where(MemoryCheckpoint.label == label))
            return _checkpoint_from_row(row) if row is not None else None

    async def list_checkpoints(self, *, automatic: bool | None = None, limit: int = 25) -> list[Checkpoint]:
        """Newest first."""
        if self.db is None:
            items = [c for c in self._memory_checkpoints.values() if automatic in (None, c.automatic)]
            return list(reversed(items))[:limit]
        async with self.db.session_scope() as session:
            query = select(MemoryCheckpoint).order_by(MemoryCheckpoint.id.desc()).limit(limit)
            if automatic is not None:
                query = query.where(MemoryCheckpoint.automatic == automatic)
            return [_checkpoint_from_row(row) for row in await session.scalars(query)]

    async def compare(self, before: str | Checkpoint, after: str | Checkpoint) -> CheckpointComparison:
        """Compare two checkpoints (labels or objects); an unknown label is a CheckpointError."""
        a = await self._resolve(before)
        b = await self._resolve(after)
        return compare_checkpoints(a, b)

    async def compare_target(self, label: str | None) -> Checkpoint | None:
        """The checkpoint named `label` (None for None); an unknown label is a CheckpointError."""
        return None if label is None else await self._resolve(label)

    async def _resolve(self, item: str | Checkpoint) -> Checkpoint:
        if isinstance(item, Checkpoint):
            return item
        found = await self.get_checkpoint(item)
        if found is None:
            raise CheckpointError(f"No checkpoint is named '{item}': pick one from the suggestions.")
        return found

    async def previous_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint | None:
        """The checkpoint stored just before `checkpoint` (of any kind)."""
        for candidate in await self.list_checkpoints(limit=2):
            if candidate.label != checkpoint.label:
                return candidate
        return None

    async def automatic_growth_percent(self) -> float | None:
        """RSS growth between the two newest automatic checkpoints, in percent."""
        pair = await self.list_checkpoints(automatic=True, limit=2)
        if len(pair) < 2:
            return None
        return _percent_change(pair[1].sample.rss, pair[0].sample.rss)

    # -- the /health/memory payload

    def stats_dict(self) -> dict[str, Any]:
        sample = self.latest or self.sample()
        return memory_stats_payload(sample, self.trend(), self.checkpoints_count)


def _checkpoint_from_row(row: MemoryCheckpoint) -> Checkpoint:
    return Checkpoint(
        row.label, _as_utc(row.created_at), row.automatic, MemorySample.from_dict(row.sample), row.allocations
    )


def _peak_rss() -> int | None:
    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    except (OSError, ValueError):
        return None


def memory_stats_payload(sample: MemorySample, trend: Trend, checkpoints_count: int) -> dict[str, Any]:
    """The JSON-serialisable stats of one sample; sizes in MiB as in the original plan."""

    def mib(value: int | None) -> float | None:
        return None if value is None else round(value / MIB, 1)

    return {
        "timestamp": sample.at.isoformat(),
        "rss": mib(sample.rss),
        "vms": mib(sample.vms),
        "uss": mib(sample.uss),
        "swap": mib(sample.swap),
        "peak_rss": mib(sample.peak_rss),
        "percent": round(sample.percent_of_limit, 2),
        "available": mib(sample.system_available),
        "system_total": mib(sample.system_total),
        "system_used": mib(sample.system_used),
        "system_percent": sample.system_percent,
        "limit": mib(sample.limit),
        "limit_source": sample.limit_source,
        "percent_of_limit": round(sample.percent_of_limit, 2),
        "checkpoints_count": checkpoints_count,
        "trend": {
            "slope_mib_per_hour": None if trend.slope_mib_per_hour is None else round(trend.slope_mib_per_hour, 3),
            "samples": trend.samples,
            "seconds_to_threshold": trend.seconds_to_threshold,
        },
        "structures": [
            {"name": s.name, "size": s.size, "limit": s.limit, "fill_percent": s.fill_percent}
            for s in sample.structures
        ],
        "pool": None if sample.pool is None else sample.pool.as_dict(),
        "gc_counts": list(sample.gc_counts),
        "loop_lag_ms": sample.loop_lag_ms,
        "threads": sample.threads,
        "open_fds": sample.open_fds,
    }


# ---------------------------------------------------------------- default instance and profiling

_default_monitor: MemoryMonitor | None = None


def set_default_monitor(monitor: MemoryMonitor | None) -> None:
    """The bot registers its monitor here so `get_memory_stats()` renders the same samples."""
    global _default_monitor
    _default_monitor = monitor


def get_default_monitor() -> MemoryMonitor:
    global _default_monitor
    if _default_monitor is None:
        _default_monitor = MemoryMonitor(Settings())
    return _default_monitor


def get_memory_stats() -> dict[str, Any]:
    """The latest sample of the process's monitor as one JSON-serialisable dict."""
    return get_default_monitor().stats_dict()


@dataclass
class ProfileStats:
    calls: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    rss_delta_total: int = 0
    rss_delta_max: int = 0
    last_at: float = 0.0


profile_table = registry.bounded_dict(
    "memory_profile", max_size=200, timestamp_key="last_at", description="memory_profile results per function"
)


def _record_profile(name: str, started: float, rss_before: int, proc: psutil.Process) -> None:
    duration = time.perf_counter() - started
    delta = proc.memory_info().rss - rss_before
    stats = profile_table.get(name) or ProfileStats()
    stats.calls += 1
    stats.total_s += duration
    stats.max_s = max(stats.max_s, duration)
    stats.rss_delta_total += delta
    stats.rss_delta_max = max(stats.rss_delta_max, delta)
    stats.last_at = time.time()
    profile_table[name] = stats


def memory_profile(func: Callable[P, R]) -> Callable[P, R]:
    """Record the RSS change and duration of each call of `func` (sync or async) in `profile_table`."""
    name = f"{func.__module__}.{func.__qualname__}"
    proc = psutil.Process()

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            rss, started = proc.memory_info().rss, time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                _record_profile(name, started, rss, proc)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        rss, started = proc.memory_info().rss, time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            _record_profile(name, started, rss, proc)

    return wrapper
