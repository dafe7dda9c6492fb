"""The use cases behind the /mem commands: one call each, Discord-free, answering with a small
frozen result the extension renders.

A command of the extension reads as five steps: check, defer when it may take more than a moment,
one call here, render, reply. What a command does (compare with which checkpoint, roll tracing back
when a checkpoint is refused, clean this process or ask the fleet, store a threshold before it
applies) is decided here and unit-testable without Discord.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from polly import records
from polly.alert_settings import AlertSettings, NoAlertChannelError
from polly.alert_store import AlertStore, StoredAlertEvent
from polly.alerts import ActiveAlert, Thresholds
from polly.allocations import CHECKPOINTS, tracing_requested
from polly.checkpoints import Checkpoint, CheckpointComparison, compare_checkpoints
from polly.config import Settings
from polly.enhanced_database import Database, PoolStatus
from polly.gc_tools import CleanupReport
from polly.heap_trim import TrimReport
from polly.heap_types import TypeGrowth
from polly.memory_optimizer import MemoryMonitor
from polly.monitor_cycle import MonitorCycle
from polly.monitor_health import MonitorHealth
from polly.records import record
from polly.samples import MemorySample
from polly.trend import Trend

if TYPE_CHECKING:
    from polly.alert_outbox import AlertSink
    from polly.allocation_trace import TraceReport, TraceSession
    from polly.bot_census import BotCensus
    from polly.fleet import Heartbeat
    from polly.fleet_cleanup import CleanupAnswer, FleetCleanup
    from polly.heap_inspect import Inspection
    from polly.post_mortem import PostMortem
    from polly.rss_breakdown import RssBreakdown

RECENT_ALERT_EVENTS = 10


@record
class StatsView:
    sample: MemorySample
    trend: Trend
    health: MonitorHealth  # a copy: the loop's health at the moment of the call
    now: datetime
    firing: int
    tracing: bool
    threshold_percent: float
    previous_run: PostMortem | None = None  # how the previous run ended, when it did not stop cleanly


@record
class ExplainView:
    """Where the RSS is now (`sample.breakdown`), against a checkpoint's when it has one."""

    sample: MemorySample
    before: Checkpoint | None  # compared with: `compare_to`, else the newest automatic checkpoint
    growing: tuple[TypeGrowth, ...]  # types grown between the two newest automatic checkpoints
    last_trim: TrimReport | None = None  # what the last heap trim gave back
    malloc_arenas: int | None = None  # glibc's arenas now (MALLOC_ARENA_MAX bounds them)

    @property
    def before_breakdown(self) -> RssBreakdown | None:
        return None if self.before is None else self.before.sample.breakdown


@record
class TasksView:
    """The bot census taken now (heap parts included), against the newest automatic checkpoint's."""

    census: BotCensus
    before: Checkpoint | None
    rss: int  # the bot's own RSS, beside its children's

    @property
    def grown(self) -> tuple[TypeGrowth, ...]:
        from polly.bot_census import census_growth

        return census_growth(self.before.sample.bot if self.before is not None else None, self.census, top=25)


@record
class CheckpointResult:
    stored: Checkpoint
    comparison: CheckpointComparison | None
    growth_threshold: float
    tracing: bool
    tracing_note: str | None = None  # why tracing is on although these checkpoints did not ask for it


@record
class CleanupResult:
    """A cleanup of this process (`report`, with `note` for a fleet dry run), or the fleet's answers."""

    report: CleanupReport | None = None
    note: str | None = None
    fleet_answers: tuple[CleanupAnswer, ...] = ()
    fleet_missing: tuple[str, ...] = ()
    fleet_wait_s: float = 0.0

    @property
    def by_fleet(self) -> bool:
        return self.report is None


@record
class PoolView:
    pool: PoolStatus
    overflow_alert_percent: float


@record
class FleetView:
    members: tuple[Heartbeat, ...]
    now: datetime
    silent_after_s: float
    shared: bool  # several processes can share the database (PostgreSQL)


@record
class AlertsView:
    notes: tuple[str, ...]  # what the call changed, one line each
    channel_id: int | None
    thresholds: Thresholds
    active: tuple[ActiveAlert, ...]
    recent: tuple[StoredAlertEvent, ...]
    waiting: int


class MemoryOps:
    """The /mem use cases of one memory layer."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        monitor: MemoryMonitor,
        cycle: MonitorCycle,
        store: AlertStore,
        alert_settings: AlertSettings,
        fleet_cleanup: Callable[[], FleetCleanup | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.monitor = monitor
        self.cycle = cycle
        self.store = store
        self.alert_settings = alert_settings
        self._fleet_cleanup = fleet_cleanup  # PostgreSQL: asks the other processes (the layer's, once open)

    def stats(self) -> StatsView:
        """The sample commands show (fresh if the loop has not produced one lately), with its context."""
        sample = self.cycle.current_sample()
        engine = self.cycle.engine
        return StatsView(
            sample,
            self.cycle.trend(),
            records.replace(self.cycle.health),
            self.monitor.clock(),
            len(engine.active()),
            self.monitor.tracing,
            engine.thresholds.memory_percent,
            self.cycle.runs.previous if self.cycle.runs is not None else None,
        )

    async def explain(self, compare_to: str | None) -> ExplainView:
        """Where the RSS is now and what changed since `compare_to` (default: the newest automatic
        checkpoint); an unknown label is a CheckpointError."""
        before = await self.monitor.compare_target(compare_to)
        if before is None:
            newest = await self.monitor.list_checkpoints(automatic=True, limit=1)
            before = newest[0] if newest else None
        sample = self.cycle.current_sample()  # with its details: the breakdown read now, once
        from polly.allocator_stats import detect_allocator, malloc_arenas

        growing = (await self.monitor.automatic_growth()).types
        arenas = malloc_arenas(detect_allocator())
        return ExplainView(sample, before, growing, self.cycle.cleanups.trimmer.last, arenas)

    async def tasks(self) -> TasksView | None:
        """The bot census now, with its heap parts (sessions, survivors' holders: a walk off the
        loop and a time-boxed search); None where no bot feeds the census."""
        watch = self.monitor.bot
        if watch is None:
            return None
        census = await watch.full(self.monitor.clock())
        newest = await self.monitor.list_checkpoints(automatic=True, limit=1)
        return TasksView(census, newest[0] if newest else None, self.cycle.current_sample().rss)

    async def checkpoint(self, label: str | None, compare_to: str | None, trace: bool | None) -> CheckpointResult:
        """Store a checkpoint (tracing switched first when `trace` says so) and compare it with
        `compare_to`, else the previous one. A refused checkpoint (unknown `compare_to`, label
        taken, database down) changes nothing: tracing goes back to how it was."""
        was_requested = tracing_requested(CHECKPOINTS)
        try:
            before = await self.monitor.compare_target(compare_to)
            if trace is not None:
                self.monitor.set_tracing(trace)
            stored = await self.monitor.checkpoint(label)
        except BaseException:
            self.monitor.set_tracing(was_requested)
            raise
        before = before or await self.monitor.previous_checkpoint(stored)
        comparison = compare_checkpoints(before, stored) if before is not None else None
        self.cycle.note_types(comparison.types if comparison else (), stored.sample.type_counts)
        threshold = self.cycle.engine.thresholds.checkpoint_growth_percent
        running = self.cycle.running_trace()
        note = None
        if self.monitor.tracing and running is not None and not tracing_requested(CHECKPOINTS):
            note = f"tracemalloc stays on for the allocation trace running until {running.ends_at:%H:%M} UTC."
        return CheckpointResult(stored, comparison, threshold, self.monitor.tracing, note)

    async def checkpoint_labels(self, typed: str, limit: int = 25) -> list[str]:
        needle = typed.lower()
        labels = [c.label for c in await self.monitor.list_checkpoints(limit=100) if needle in c.label.lower()]
        return labels[:limit]

    def ensure_cleanup_possible(self) -> None:
        """Raise CleanupRunningError (saying who started it) while a cleanup runs."""
        self.cycle.cleanups.ensure_none_running()

    async def cleanup(self, who: str, *, dry_run: bool, fleet: bool) -> CleanupResult:
        """Clean this process, or (`fleet`, not a dry run, on PostgreSQL) ask every process sharing
        the database to clean and collect their answers."""
        asker = self._fleet_cleanup()
        if fleet and not dry_run and asker is not None:
            members = [m.instance for m in await self.cycle.fleet_members()]
            wait = self.settings.fleet_reply_seconds
            answers, missing = await asker.ask(who, members, wait)
            return CleanupResult(fleet_answers=tuple(answers), fleet_missing=tuple(missing), fleet_wait_s=wait)
        report = await self.cycle.cleanups.manual(who, dry_run=dry_run)
        note = None
        if fleet:
            note = (
                "This process only: on SQLite it is the whole fleet."
                if asker is None
                else "A dry run looks at this process only; without dry_run every process sharing the "
                "database cleans up and reports."
            )
        return CleanupResult(report, note)

    def pool(self) -> PoolView:
        return PoolView(self.db.get_pool_status(), self.cycle.engine.thresholds.pool_overflow_percent)

    async def inspect(self, type_name: str, named_roots: Mapping[str, object]) -> Inspection:
        """Count a type's live objects, estimate their size, find who holds one (off the loop)."""
        from polly.heap_inspect import inspect_type  # heap analysis is loaded on first use only

        structures = [(tracked.name, tracked.target) for tracked in self.cycle.structures]
        return await inspect_type(type_name, named_roots=named_roots, structures=structures)

    def type_suggestions(self, typed: str) -> list[str]:
        return self.cycle.type_suggestions(typed)

    def start_trace(self, who: str, minutes: int, report: TraceReport) -> TraceSession:
        """Trace allocations for `minutes`; the core's timer ends it and hands `report` the results.
        NoAlertChannelError without an alert channel (where the results go); TraceRunningError
        while one runs."""
        if self.alert_settings.channel_id is None:
            raise NoAlertChannelError("No alert channel is set: choose one with /mem alerts channel: first.")
        return self.cycle.traces.start(who, minutes, report)

    async def fleet(self) -> FleetView:
        members = await self.cycle.fleet_members()
        silent_after = self.settings.fleet_silent_checks * self.settings.memory_check_interval_seconds
        return FleetView(tuple(members), self.monitor.clock(), silent_after, self.cycle.fleet is not None)

    async def alerts(
        self,
        *,
        threshold: str | None = None,
        value: float | None = None,
        channel_id: int | None = None,
        new_channel: Callable[[], AlertSink] | None = None,
    ) -> AlertsView:
        """Apply what was asked (a threshold, then a new channel: each stored before it applies;
        what waits is delivered to the new channel, `new_channel`, at once), then the overview:
        channel, thresholds, firing alerts, recent events, what still waits."""
        notes = []
        if threshold is not None or value is not None:
            notes.append(await self.alert_settings.set_threshold(threshold, value))
        if channel_id is not None:
            await self.alert_settings.set_channel(channel_id)
            notes.append(f"Alerts now go to <#{channel_id}>.")
            if new_channel is not None:
                await self.cycle.alerts.deliver(new_channel)
        engine = self.cycle.engine
        return AlertsView(
            tuple(notes),
            self.alert_settings.channel_id,
            engine.thresholds,
            tuple(engine.active()),
            tuple(await self.store.recent(RECENT_ALERT_EVENTS)),
            await self.cycle.alerts.waiting(),
        )
