"""One monitor tick: due cleanup, sample, due automatic checkpoint, alert evaluation, history.

The cog's `tasks.loop` calls `tick()` and renders what it returns; this module decides what is
due and keeps the loop's own health (errors, back-off), so it can be tested with a fake clock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from polly.alert_engine import AlertEngine
from polly.alert_outbox import AlertEventOut, AlertOutbox
from polly.alert_rules import evaluate_rules
from polly.alert_store import AlertStore
from polly.alerts import Rule, Transition
from polly.bot_rules import BotGrowth
from polly.checkpoints import Checkpoint
from polly.cleanups import Cleanups
from polly.config import Settings
from polly.container import ContainerMark
from polly.database_errors import log_failure
from polly.gc_tools import CleanupReport
from polly.heap_types import TypeGrowth
from polly.history import HistoryRecorder
from polly.memory_optimizer import MemoryMonitor
from polly.monitor_health import MonitorHealth
from polly.records import record, replace
from polly.registry import StructureRegistry
from polly.run_journal import RunJournal
from polly.samples import MemorySample
from polly.sqlite_file import FileIncident
from polly.trend import LeakWatch, LeakWindows, Trend
from polly.warmup_leak import warmup_leak_evidence

if TYPE_CHECKING:
    from polly.allocation_trace import TraceSession, TraceSlot
    from polly.fleet import Fleet, Heartbeat
    from polly.rss_breakdown import PartChange

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF_FACTOR = 16
GROWING_TYPES_NAMED = 3  # in leak-trend and checkpoint-growth alerts


@record
class TickResult:
    sample: MemorySample
    trend: Trend
    events: tuple[AlertEventOut, ...]
    cleanup: CleanupReport | None
    checkpoint: Checkpoint | None
    database_incident: FileIncident | None = None


@record
class BackoffChange:
    """Returned by `record_failure`/`record_success` when the loop interval must change."""

    factor: int
    interval_s: float
    entering: bool


class MonitorCycle:
    """What each tick does, and the loop's health."""

    def __init__(
        self,
        settings: Settings,
        monitor: MemoryMonitor,
        engine: AlertEngine,
        store: AlertStore | None,
        structures: StructureRegistry,
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.engine = engine
        self.store = store
        self.structures = structures
        self.health = MonitorHealth()
        # Warm-up after a start is not a leak: the leak rule and the checkpoint-growth rule
        # ignore what happened before `warm_at` (ALERT_LEAK_GRACE_MINUTES after the first tick).
        self.started_at: datetime | None = None
        self.leak_watch = LeakWatch(
            settings.alert_leak_fast_window_minutes * 60, settings.alert_leak_slow_window_minutes * 60
        )
        self.last_cleanup_at: datetime | None = None
        self.last_checkpoint_at: datetime | None = None
        self.last_size_estimate_at: datetime | None = None
        self.growth_percent: float | None = None
        self.leak_resolved_at: datetime | None = None  # the leak windows' evidence starts after it
        self.growing_types: tuple[TypeGrowth, ...] = ()  # since the previous automatic checkpoint
        self.grown_part: PartChange | None = None  # the part of RSS that grew most in that time
        # For /mem inspect's suggestions: the latest comparison's growth, the latest counts.
        self._grown_type_names: tuple[str, ...] = ()
        self._common_type_names: tuple[str, ...] = ()
        self._traces: TraceSlot | None = None  # /mem trace, one at a time (see `traces`)
        self.history = HistoryRecorder(monitor.db, settings.memory_chart_retention_hours)
        self.cleanups = Cleanups(settings, self.structures, monitor, self.history)  # one at a time
        # Heartbeats and fleet rules only where several processes can share the database (PostgreSQL).
        shared = monitor.db is not None and not settings.is_sqlite
        self.fleet: Fleet | None = None
        if shared:
            from polly.fleet import Fleet  # a SQLite bot, its own fleet, never loads the fleet code

            self.fleet = Fleet(monitor.db, settings, engine, store, monitor.clock)  # type: ignore[arg-type]
        # PostgreSQL: keeps the fleet cleanup's LISTEN connection open (set by the memory layer).
        self.fleet_listener: Callable[[], Awaitable[None]] | None = None
        # Transitions go out through the outbox: stored (or kept in memory), then delivered.
        self.alerts = AlertOutbox(store, structures, monitor.clock, self.health)
        self.bot_growth = BotGrowth()  # each kind of task and view's run, the last session counts
        # The container's counters of the last ALERT_FOR_CHECKS checks: the throttling rule's window.
        self.container_marks: deque[ContainerMark] = deque()
        # This run's record, for a post-mortem should it die (begun by the memory layer's open()).
        self.runs = RunJournal(store, settings.instance(), monitor.clock) if store is not None else None

    # -- what is due

    def _due(self, last: datetime | None, minutes: float, now: datetime) -> bool:
        return last is not None and now - last >= timedelta(minutes=minutes)

    @property
    def warm_at(self) -> datetime | None:
        if self.started_at is None:
            return None
        return self.started_at + timedelta(minutes=self.settings.alert_leak_grace_minutes)

    async def tick(self, loop_lag_ms: float | None = None) -> TickResult:
        """One tick. The error-isolation policy, the same for every step: the sample and the alert
        rules are the tick (their failure fails it: counted, and repeated failures back the loop
        off); every other step is isolated: a failure is logged with the step's name, counted,
        listed in `health.failed_steps`, and the rest of the tick runs."""
        now = self.monitor.clock()
        failed: list[str] = []
        if self.started_at is None:
            self.started_at = now
        if self.last_cleanup_at is None:
            self.last_cleanup_at = now  # the first automatic cleanup comes one interval after start
        database = self.monitor.db
        incident = None
        if database is not None:
            incident = await self._isolated("database file check", failed, database.recover_file(now), None)
        cleanup = None
        if self._due(self.last_cleanup_at, self.settings.memory_cleanup_interval_minutes, now):
            self.last_cleanup_at = now
            if self.cleanups.owner is None:  # a manual cleanup is running: skip this one
                cleanup = await self._isolated("automatic cleanup", failed, self.cleanups.automatic(now), None)
        if self.last_size_estimate_at is None or self._due(
            self.last_size_estimate_at, self.settings.memory_size_estimate_minutes, now
        ):
            self.last_size_estimate_at = now
            self._isolated_now("structure size estimates", failed, self.structures.estimate_sizes)
        previous = self.monitor.latest
        sample = self.monitor.sample(loop_lag_ms)
        await self._isolated("chart history", failed, self._record_history(sample, cleanup is not None), None)
        trend = self.trend()
        if self.fleet is not None:
            beat = self.fleet.store.beat(self.heartbeat(sample, trend))
            await self._isolated("fleet heartbeat", failed, beat, None)
        if self.fleet_listener is not None:
            await self._isolated("fleet cleanup listener", failed, self.fleet_listener(), None)
        checkpoint = None
        if self.monitor.checkpoints.persistent and (
            self.last_checkpoint_at is None
            or self._due(self.last_checkpoint_at, self.settings.memory_auto_checkpoint_minutes, now)
        ):
            self.last_checkpoint_at = now
            checkpoint = await self._isolated("automatic checkpoint", failed, self._automatic_checkpoint(), None)
        conditions = evaluate_rules(
            sample,
            self.leak_windows(),
            self.engine.thresholds,
            previous=previous,
            window_start=self._container_window(sample),
            checkpoint_growth_percent=self.growth_percent,
            growing_types=self.growing_types[:GROWING_TYPES_NAMED],
            grown_part=self.grown_part,
        )
        conditions += self.bot_growth.conditions(sample.bot, sample.at, self.engine.thresholds)
        if self.fleet is not None:
            conditions += await self._isolated("fleet rules", failed, self.fleet.conditions(sample.at), [])
        self.health.rules_not_evaluated = sum(not c.evaluated for c in conditions)
        transitions = self.engine.evaluate(conditions, sample.at)
        for t in transitions:
            if t.rule is Rule.LEAK_TREND and t.kind is Transition.RESOLVED:
                self.leak_resolved_at = t.at
        events = await self.alerts.add_all(transitions)
        if self.runs is not None and self.runs.judged:
            note = self.runs.note(sample, trend, self.growing_types, self.engine.active())
            await self._isolated("run record", failed, note, None)
        self.health.failed_steps = tuple(failed)
        return TickResult(sample, trend, events, cleanup, checkpoint, incident)

    @property
    def traces(self) -> TraceSlot:
        """The time-boxed allocation trace's slot; its code loads with the first trace."""
        if self._traces is None:
            from polly.allocation_trace import TraceSlot

            self._traces = TraceSlot(self.monitor.clock, self.settings.memory_trace_frames)
        return self._traces

    def running_trace(self) -> TraceSession | None:
        return self._traces.session if self._traces is not None else None

    def cancel_trace(self) -> TraceSession | None:
        """Stop the running trace without results (the memory layer is closing)."""
        return self._traces.cancel() if self._traces is not None else None

    async def _isolated(self, step: str, failed: list[str], work: Awaitable[T], fallback: T) -> T:
        try:
            return await work
        except Exception as exc:
            self._step_failed(step, failed, exc)
            return fallback

    def _isolated_now(self, step: str, failed: list[str], work: Callable[..., T], *args: object) -> T | None:
        try:
            return work(*args)
        except Exception as exc:
            self._step_failed(step, failed, exc)
            return None

    def _step_failed(self, step: str, failed: list[str], error: Exception) -> None:
        self.health.errors += 1
        failed.append(step)
        log_failure(log, error, "Monitor tick: the %s failed; the rest of the tick goes on", step)

    async def _automatic_checkpoint(self) -> Checkpoint:
        checkpoint = await self.monitor.checkpoint(automatic=True)  # unique "auto <UTC time>" label
        growth = await self.monitor.automatic_growth(since=self.warm_at)
        self.growth_percent, self.growing_types, self.grown_part = growth.percent, growth.types, growth.part
        self.note_types(self.growing_types, checkpoint.sample.type_counts)
        return checkpoint

    def _container_window(self, sample: MemorySample) -> ContainerMark | None:
        """The container's reading ALERT_FOR_CHECKS checks before this sample (the oldest kept)."""
        marks = self.container_marks
        if sample.container is None:
            marks.clear()  # a gap in the readings: the window starts again
            return None
        marks.append(ContainerMark(sample.at, sample.container))
        while len(marks) > self.engine.thresholds.for_checks + 1:
            marks.popleft()
        return marks[0] if len(marks) > 1 else None

    def heartbeat(self, sample: MemorySample, trend: Trend) -> Heartbeat:
        """This process as the fleet sees it."""
        from polly.fleet import heartbeat

        return heartbeat(
            self.settings.instance(),
            self.settings.shards(),
            self.started_at or sample.at,
            sample.at,
            sample.rss,
            sample.limit,
            trend.slope_mib_per_hour,
            self.engine.firing_count(),
        )

    async def fleet_members(self) -> list[Heartbeat]:
        """Every process sharing the database; on SQLite, this process alone."""
        if self.fleet is None:
            return [self.heartbeat(self.current_sample(), self.trend())]
        return await self.fleet.store.members()

    async def _record_history(self, sample: MemorySample, cleaned: bool) -> None:
        self.history.add(sample.at, sample.rss, sample.limit)
        if cleaned:
            self.history.note_cleanup(sample.at, manual=False)
        await self.history.flush_due()  # when it fails, the rows wait in memory for the next tick

    def trend(self) -> Trend:
        """The RSS trend towards the live memory threshold (runtime changes included)."""
        return self.monitor.trend(self.engine.thresholds.memory_percent)

    def leak_windows(self) -> LeakWindows:
        """What the leak rule's two windows say now, from samples after the warm-up grace."""
        grace = timedelta(minutes=self.settings.alert_leak_grace_minutes)
        warm_at = self.warm_at or self.monitor.clock() + grace
        # After a leak alert resolves, the rise it was about is not a new leak: evidence starts anew.
        not_before = max(warm_at, self.leak_resolved_at) if self.leak_resolved_at else warm_at
        fired = next((a.since for a in self.engine.active() if a.rule is Rule.LEAK_TREND), None)
        fired_at = fired.timestamp() if fired is not None else None
        rate = self.engine.thresholds.leak_min_mib_per_hour
        windows = self.leak_watch.windows(self.monitor.history, not_before.timestamp(), fired_at, rate)
        if self.started_at is not None and self.leak_resolved_at is None and windows.fast.slope_mib_per_hour is None:
            # in the warm-up (and until the short window is judged after it): a rise that does not
            # saturate is a leak from the first minute. Not after a leak alert resolved: the fit
            # looks back to the start and would find the resolved rise again.
            early = warmup_leak_evidence(self.monitor.history, self.started_at.timestamp())
            if early is not None:
                return replace(windows, fast=early)
        return windows

    def note_types(self, growth: Iterable[TypeGrowth], counts: dict[str, int] | None) -> None:
        """Remember the latest checkpoint's growing and most common types (for suggestions)."""
        grown = tuple(g.name for g in growth)
        if grown:
            self._grown_type_names = grown
        if counts:
            self._common_type_names = tuple(counts)

    def type_suggestions(self, typed: str, limit: int = 25) -> list[str]:
        """Types that grew most in the latest comparison, then the most common, matching `typed`."""
        needle = typed.lower()
        names = dict.fromkeys([*self._grown_type_names, *self._common_type_names])
        return [name for name in names if needle in name.lower()][:limit]

    def current_sample(self) -> MemorySample:
        """The sample commands show: the latest, unless the loop has not produced one within its
        (backed-off) interval, then a fresh one; discord.py's caches (O(guilds)) and the bot census
        (O(tasks + views): sessions as last counted) are read now."""
        max_age = self.settings.memory_check_interval_seconds * self.health.backoff_factor
        sample = self.monitor.with_details(self.monitor.fresh_sample(max_age))
        census, bot = self.monitor.count_caches(), self.monitor.read_bot(self.monitor.clock())
        return replace(
            sample,
            discord_caches=sample.discord_caches if census is None else census,
            bot=sample.bot if bot is None else bot,
        )

    def memory_status(self, sample: MemorySample) -> str:
        """ "critical" at ALERT_CRITICAL_MEMORY_PERCENT, "warning" while any alert fires, else "healthy"."""
        if sample.percent_of_limit >= self.settings.alert_critical_memory_percent:
            return "critical"
        return "warning" if self.engine.active() else "healthy"

    # -- the alert state at start

    async def restore_firing(self) -> int:
        """Take back the alerts that were firing when the bot stopped; return how many."""
        if self.store is None:
            return 0
        firing = await self.store.firing()
        self.engine.restore(firing)
        if firing:
            log.info("Restored %d firing alert(s) from the database", len(firing))
        return len(firing)

    # -- health and back-off

    def record_success(self, now: datetime) -> BackoffChange | None:
        self.health.ticks += 1
        self.health.last_tick_at = now
        self.health.consecutive_errors = 0
        if self.health.backoff_factor != 1:
            self.health.backoff_factor = 1
            log.info("Memory monitor recovered; back to every %.0f s", self.settings.memory_check_interval_seconds)
            return BackoffChange(1, self.settings.memory_check_interval_seconds, entering=False)
        return None

    def record_failure(self, error: BaseException) -> BackoffChange | None:
        self.health.errors += 1
        self.health.consecutive_errors += 1
        self.health.last_error = f"{type(error).__name__}: {error}"[:300]
        limit = self.settings.memory_max_consecutive_errors
        if self.health.consecutive_errors < limit:
            return None
        factor = min(MAX_BACKOFF_FACTOR, 2 ** (self.health.consecutive_errors - limit + 1))
        if factor == self.health.backoff_factor:
            return None
        entering = self.health.backoff_factor == 1
        self.health.backoff_factor = factor
        interval = self.settings.memory_check_interval_seconds * factor
        if entering:
            log.warning(
                "Memory monitor failed %d ticks in a row; backing off (interval doubles, at most %dx)",
                self.health.consecutive_errors,
                MAX_BACKOFF_FACTOR,
            )
        return BackoffChange(factor, interval, entering)
