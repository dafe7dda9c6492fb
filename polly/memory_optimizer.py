"""MemoryMonitor: one consistent memory sample, its history and trend, and checkpoints.

The host's figures alone are wrong inside a container, which is wrong for "80 % of the
limit": the effective limit comes from the cgroup (v2 or v1) or `MEMORY_LIMIT_MB`, whichever is
smaller, else the host total.

This is also the plan's import path: the samples, trend, checkpoints, payload and profiling
names are re-exported from the modules that do each job.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from polly import allocations
from polly.caches import CacheCensus
from polly.checkpoints import (
    AutomaticGrowth,
    Checkpoint,
    CheckpointComparison,
    CheckpointError,
    DatabaseCheckpointStore,
    DuplicateLabelError,
    MemoryCheckpointStore,
    automatic_growth,
    checked_label,
    compare_checkpoints,
    lone_surrogate,
)
from polly.clock import now as clock_now
from polly.config import Settings
from polly.container import ContainerMemory, ContainerReader
from polly.decorators import ProfileStats, memory_profile, profile_table
from polly.enhanced_database import Database
from polly.heap_types import count_types_in_pieces, type_counts
from polly.memory_limit import CgroupReader, MemoryLimit, effective_limit
from polly.off_loop import off_loop
from polly.process_stats import AccessDenied, ProcessMemory, current_process
from polly.records import replace
from polly.registry import StructureRegistry, registry
from polly.samples import MemorySample, measure_loop_lag, peak_rss
from polly.trend import RssPoint, Trend, rss_trend

if TYPE_CHECKING:
    from polly.bot_census import BotCensus
    from polly.bot_watch import BotWatch
    from polly.breakdown_reader import BreakdownReader
    from polly.checkpoints import CheckpointStore
    from polly.container import ContainerSource
    from polly.process_stats import ProcessStats
    from polly.rss_breakdown import RssBreakdown

log = logging.getLogger(__name__)


TREND_MIN_SPAN_S = 600.0  # no trend figure from less than 10 minutes of samples

DEFAULT_LABEL_ATTEMPTS = 100  # " #2" … " #100" within one second

__all__ = [
    "Checkpoint",
    "CheckpointComparison",
    "CheckpointError",
    "MemoryMonitor",
    "MemorySample",
    "ProfileStats",
    "Trend",
    "compare_checkpoints",
    "get_default_monitor",
    "get_memory_stats",
    "measure_loop_lag",
    "memory_profile",
    "profile_table",
    "rss_trend",
    "set_default_monitor",
]


def __getattr__(name: str) -> Any:
    """`memory_stats_payload`, still importable from here, loads with its first use."""
    if name == "memory_stats_payload":
        from polly.stats_payload import memory_stats_payload

        return memory_stats_payload
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def _isolated(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:
        log.exception("The bot census's heap parts failed; the checkpoint goes on")


class MemoryMonitor:
    """Samples memory, keeps the history and trend, stores and compares checkpoints."""

    def __init__(
        self,
        settings: Settings,
        db: Database | None = None,
        *,
        structures: StructureRegistry | None = None,
        cgroup: CgroupReader | None = None,
        container: ContainerSource | None = None,
        process: ProcessStats | None = None,
        clock: Callable[[], datetime] | None = None,
        census: Callable[[], CacheCensus] | None = None,
        bot: BotWatch | None = None,
        keep_files_open: bool = False,
    ) -> None:
        """`keep_files_open`: the /proc and cgroup files every tick reads stay open until `close()`
        (`polly.kernel_files`; the memory layer's monitor, which ticks, keeps them)."""
        self.settings = settings
        self.census = census  # counts discord.py's caches; set by the Discord side
        self.bot = bot  # what the bot keeps alive (tasks, views, sessions...); fed by the Discord side
        self.db = db
        self.structures = structures if structures is not None else registry
        self.cgroup = cgroup or CgroupReader()
        self.container: ContainerSource = container or ContainerReader(self.cgroup, keep_open=keep_files_open)
        self.process = process or current_process(keep_open=keep_files_open)
        self.clock = clock or clock_now
        self.history: deque[RssPoint] = deque(maxlen=settings.memory_history_size)
        keep = (settings.memory_checkpoint_retention, settings.memory_auto_checkpoint_retention)
        self.checkpoints: CheckpointStore = (
            DatabaseCheckpointStore(db, *keep) if db is not None else MemoryCheckpointStore(*keep)
        )
        self.checkpoints_count = 0
        self._latest: MemorySample | None = None
        self._full_info_denied = False
        self._breakdown: BreakdownReader | None = None
        self._completed: MemorySample | None = None
        self._cgroup_limit = self.cgroup.limit()  # a container's limit does not change at runtime
        self._trend_cache: tuple[tuple[int, float], Trend] | None = None

    def close(self) -> None:
        """Release the files kept open (a reading after this opens them again)."""
        self.process.close()
        self.container.close()

    # -- sampling

    @property
    def latest(self) -> MemorySample | None:
        return self._latest

    def limit(self, host_total: int | None = None) -> MemoryLimit:
        total = host_total if host_total is not None else self.process.host_memory().total
        return effective_limit(self._cgroup_limit, self.settings.memory_limit_mb, total)

    def sample(self, loop_lag_ms: float | None = None) -> MemorySample:
        """Read everything once, append it to the history and return it (USS/PSS unread: see
        `with_details`)."""
        sample = self.read(loop_lag_ms)
        self._latest = sample
        self.history.append((sample.at.timestamp(), sample.rss))
        return sample

    def read(self, loop_lag_ms: float | None = None, *, by_type: Counter[type] | None = None) -> MemorySample:
        """One sample, not recorded in the history: what a tick needs (see `with_details`)."""
        proc = self.process
        with proc.oneshot():
            mem = self._process_memory(private=False)
            threads = proc.num_threads()
            try:
                fds: int | None = proc.num_fds()
            except AccessDenied:
                fds = None
        vm = proc.host_memory()
        limit = self.limit(vm.total)
        pool = self.db.get_pool_status() if self.db is not None else None
        stats = gc.get_stats()
        at = self.clock()
        return MemorySample(
            at=at,
            rss=mem.rss,
            vms=mem.vms,
            uss=mem.uss,
            pss=mem.pss,
            swap=mem.swap,
            peak_rss=mem.peak if mem.peak is not None else peak_rss(),
            rss_anon=mem.anon,
            rss_file=mem.file,
            rss_shmem=mem.shmem,
            threads=threads,
            open_fds=fds,
            system_total=vm.total,
            system_available=vm.available,
            system_used=vm.total - vm.available,
            system_percent=vm.percent,
            limit=limit.bytes,
            limit_source=limit.source,
            gc_counts=gc.get_count(),
            gc_collections=tuple(s["collections"] for s in stats),
            structures=self.structures.stats(at.timestamp(), scan=False),  # O(1) each: every tick
            pool=pool,
            loop_lag_ms=loop_lag_ms,
            gc_objects=sum(by_type.values()) if by_type is not None else None,
            discord_caches=self.count_caches(),
            type_counts=type_counts(by_type) if by_type is not None else None,
            container=self.read_container(),
            bot=self.read_bot(at),
        )

    def read_container(self) -> ContainerMemory | None:
        """The memory cgroup and pressure now (None if reading them failed: the sample goes on)."""
        try:
            return self.container.read()
        except Exception:
            log.exception("Reading the memory cgroup failed")
            return None

    def read_bot(self, at: datetime) -> BotCensus | None:
        """The bot census now (None without a source, or if it failed: the sample goes on)."""
        try:
            return self.bot.read(at) if self.bot is not None else None
        except Exception:
            log.exception("The bot census failed")
            return None

    def count_caches(self) -> CacheCensus | None:
        """discord.py's caches now (None without a census source, or if counting failed)."""
        if self.census is None:
            return None
        try:
            return self.census()
        except Exception:  # a census that fails must not cost the sample
            log.exception("Counting discord.py's caches failed")
            return None

    def with_details(self, sample: MemorySample) -> MemorySample:
        """`sample` with what a tick leaves out, read now: USS/PSS (smaps_rollup) and where the RSS
        is (`polly.rss_breakdown`). Once per sample: the latest is replaced by the completed one,
        so the next reader (the next scrape, /mem stats) reuses it."""
        if sample is self._completed or sample.breakdown is not None:
            return sample
        completed = replace(sample, breakdown=self.breakdown_reader().read(sample))
        if sample.uss is None and not self._full_info_denied:
            full = self._process_memory(private=True)
            completed = replace(completed, uss=full.uss, pss=full.pss, swap=full.swap)
        if sample is self._latest:
            self._latest = completed
        self._completed = completed  # also when a part could not be read: not read again for it
        return completed

    def breakdown_reader(self) -> BreakdownReader:
        if self._breakdown is None:
            from polly.breakdown_reader import BreakdownReader  # loaded when a breakdown is first shown

            self._breakdown = BreakdownReader()
        return self._breakdown

    def breakdown_now(self) -> RssBreakdown | None:
        """Where the RSS is at this moment (a cleanup's steps are measured with it; no smaps walk)."""
        return self.breakdown_reader().read(self.read())

    def _process_memory(self, private: bool) -> ProcessMemory:
        if private and not self._full_info_denied:
            try:
                return self.process.memory_full_info()
            except AccessDenied:
                # Some hardened hosts forbid /proc/<pid>/smaps; RSS is still readable.
                self._full_info_denied = True
                log.warning("USS/PSS are not readable here (access denied); reporting RSS only")
        return self.process.memory_info()

    def trend(self, threshold_percent: float | None = None) -> Trend:
        """The RSS trend over MEMORY_TREND_WINDOW_MINUTES, towards `threshold_percent` of the limit
        (the alert engine's live memory threshold; ALERT_MEMORY_PERCENT when not given)."""
        latest = self.latest
        if latest is None:
            return Trend(None, 0, 0.0, None)
        percent = self.settings.alert_memory_percent if threshold_percent is None else threshold_percent
        key = (id(latest), percent)
        if self._trend_cache is not None and self._trend_cache[0] == key:
            return self._trend_cache[1]
        threshold = latest.limit * percent / 100
        window = self.settings.memory_trend_window_minutes * 60
        trend = rss_trend(
            self.history,
            window,
            threshold,
            min_samples=self.settings.alert_for_checks,
            min_span_s=min(TREND_MIN_SPAN_S, window / 2),
        )
        self._trend_cache = (key, trend)
        return trend

    def fresh_sample(self, max_age_s: float) -> MemorySample:
        """The latest sample if it is younger than `max_age_s`, else a new one (recorded)."""
        latest = self.latest
        if latest is not None and (self.clock() - latest.at).total_seconds() <= max_age_s:
            return latest
        return self.sample(latest.loop_lag_ms if latest is not None else None)

    # -- tracemalloc

    @property
    def tracing(self) -> bool:
        return allocations.tracing()

    def set_tracing(self, enabled: bool) -> None:
        allocations.set_tracing(enabled, self.settings.memory_trace_frames)

    # -- checkpoints

    async def checkpoint(self, label: str | None = None, *, automatic: bool = False) -> Checkpoint:
        """Store a sample (and an allocation summary when tracing) under a unique label.

        A given label already taken is a CheckpointError; the default label (the UTC time) gets
        " #2", " #3"… when taken, also when two checkpoints are stored at once."""
        if label is not None:
            label = checked_label(label)
            if await self.checkpoints.exists(label):
                raise DuplicateLabelError(label)
        if self.bot is not None:
            self.bot.survivor_watch.walk_starts()
        objects = gc.get_objects()
        by_type = await count_types_in_pieces(objects)
        if self.bot is not None:  # the census's heap parts (sessions, unloaded cogs) from the same walk
            await _isolated(self.bot.count_heap(self.clock(), objects, by_type))
        del objects  # before the chain search: while the list lives, so does every object in it
        if self.bot is not None:
            await _isolated(self.bot.search_chains())
        sample = self.with_details(self.read(self.latest.loop_lag_ms if self.latest else None, by_type=by_type))
        del by_type
        found = None
        if self.tracing:
            from polly.allocation_trace import allocation_summary  # loaded with the first traced checkpoint

            found = await off_loop(allocation_summary)
        if label is not None:
            return await self._store(Checkpoint(label, sample.at, automatic, sample, found))
        base = ("auto " if automatic else "") + self.clock().strftime("%Y-%m-%d %H:%M:%S UTC")
        for suffix in range(1, DEFAULT_LABEL_ATTEMPTS + 1):
            label = base if suffix == 1 else f"{base} #{suffix}"
            if await self.checkpoints.exists(label):
                continue
            try:
                return await self._store(Checkpoint(label, sample.at, automatic, sample, found))
            except DuplicateLabelError:
                continue  # taken between the check and the insert
        raise CheckpointError(f"Over {DEFAULT_LABEL_ATTEMPTS} checkpoints in one second: wait a second and retry.")

    async def _store(self, checkpoint: Checkpoint) -> Checkpoint:
        self.checkpoints_count = await self.checkpoints.add(checkpoint)
        return checkpoint

    async def refresh_checkpoint_count(self) -> int:
        self.checkpoints_count = await self.checkpoints.count()
        return self.checkpoints_count

    async def get_checkpoint(self, label: str) -> Checkpoint | None:
        return await self.checkpoints.get(label)

    async def list_checkpoints(self, *, automatic: bool | None = None, limit: int = 25) -> list[Checkpoint]:
        """Newest first."""
        return await self.checkpoints.newest(automatic=automatic, limit=limit)

    async def compare(self, before: str | Checkpoint, after: str | Checkpoint) -> CheckpointComparison:
        """Compare two checkpoints (labels or objects); an unknown label is a CheckpointError."""
        return compare_checkpoints(await self._resolve(before), await self._resolve(after))

    async def compare_target(self, label: str | None) -> Checkpoint | None:
        """The checkpoint named `label` (None for None); an unknown label is a CheckpointError."""
        return None if label is None else await self._resolve(label)

    async def _resolve(self, item: str | Checkpoint) -> Checkpoint:
        if isinstance(item, Checkpoint):
            return item
        surrogate = lone_surrogate(item)
        if surrogate is not None:
            raise CheckpointError(
                f"No checkpoint can be named that (it holds U+{ord(surrogate):04X}, half of a character): "
                "pick one from the suggestions."
            )
        found = await self.checkpoints.get(item)
        if found is None:
            raise CheckpointError(f"No checkpoint is named '{item}': pick one from the suggestions.")
        return found

    async def previous_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint | None:
        """The checkpoint stored just before `checkpoint` (of any kind)."""
        for candidate in await self.checkpoints.newest(limit=2):
            if candidate.label != checkpoint.label:
                return candidate
        return None

    async def automatic_growth(self, since: datetime | None = None) -> AutomaticGrowth:
        """Between the two newest automatic checkpoints (see `checkpoints.automatic_growth`)."""
        return automatic_growth(await self.checkpoints.newest(automatic=True, limit=2), since)

    async def automatic_growth_percent(self) -> float | None:
        """RSS growth between the two newest automatic checkpoints, in percent."""
        return (await self.automatic_growth()).percent

    # -- the /health/memory payload

    def stats_dict(self, threshold_percent: float | None = None) -> dict[str, Any]:
        sample = self.with_details(self.latest or self.sample())
        from polly.stats_payload import memory_stats_payload  # loaded when stats are first shown

        return memory_stats_payload(sample, self.trend(threshold_percent), self.checkpoints_count)


# The process's default monitor: the running memory layer registers its own, so the plan's
# `get_memory_stats()` renders the same samples as /mem stats.
_default_monitor: MemoryMonitor | None = None


def set_default_monitor(monitor: MemoryMonitor | None) -> None:
    """The bot registers its monitor here so `get_memory_stats()` renders the same samples."""
    global _default_monitor
    _default_monitor = monitor


def get_default_monitor_or_none() -> MemoryMonitor | None:
    """The monitor a running memory layer registered, if any (no default is built)."""
    return _default_monitor


def get_default_monitor() -> MemoryMonitor:
    global _default_monitor
    if _default_monitor is None:
        _default_monitor = MemoryMonitor(Settings())
    return _default_monitor


def get_memory_stats() -> dict[str, Any]:
    """The latest sample of the process's monitor as one JSON-serialisable dict."""
    return get_default_monitor().stats_dict()
