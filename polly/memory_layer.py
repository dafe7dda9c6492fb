"""The memory layer of one bot process, assembled and released in one place: database, monitor,
monitor cycle, alert store, and on PostgreSQL the fleet-cleanup listener.

Discord-free: the extension (`polly.ext`) builds one per load, hands in the Discord-side readings
(a clock, the cache census) as plain callables, and closes it at unload, so a reload leaves no
task, connection, registry entry or tracemalloc session behind.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from polly import records
from polly.alert_engine import AlertEngine
from polly.alert_settings import AlertSettings
from polly.alert_store import AlertStore
from polly.alerts import Thresholds
from polly.allocations import set_tracing
from polly.bot_watch import BotWatch
from polly.caches import CacheCensus
from polly.clock import install_clock, remove_clock
from polly.config import Settings
from polly.database_errors import log_failure
from polly.enhanced_database import Database
from polly.memory_optimizer import MemoryMonitor, get_default_monitor_or_none, set_default_monitor
from polly.monitor_cycle import MonitorCycle
from polly.registry import StructureRegistry, registry
from polly.startup_errors import StartupError, database_failure

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from polly.bot_watch import BotSource
    from polly.fleet import Fleet
    from polly.fleet_cleanup import FleetCleanup
    from polly.gc_tools import CleanupReport
    from polly.memory_ops import MemoryOps

log = logging.getLogger(__name__)


class MemoryLayer:
    """Everything the memory layer keeps for one bot, from `open()` to `close()`."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        engine: AsyncEngine | None = None,
        clock: Callable[[], datetime],
        census: Callable[[], CacheCensus] | None = None,
        bot: BotSource | None = None,
        structures: StructureRegistry = registry,
    ) -> None:
        self.clock = clock
        self._clock_handle: object | None = None
        # Polly's own Database unless the host passed one (then the host closes it). A host's engine
        # is wrapped in a Database of Polly's that watches its pool but never disposes of it.
        self.owns_database = database is None
        if database is None:
            if engine is not None:
                url = engine.url.render_as_string(hide_password=False)
                settings = records.replace(settings, database_url=url)
            database = Database(settings, engine=engine)
        self.settings = database.settings
        self.db = database
        settings = self.settings
        watch = BotWatch(bot) if bot is not None else None
        self.monitor = MemoryMonitor(
            settings, self.db, structures=structures, clock=clock, census=census, bot=watch, keep_files_open=True
        )
        self.store = AlertStore(self.db, settings.alert_history_size, settings.instance())
        self.cycle = MonitorCycle(
            settings, self.monitor, AlertEngine(Thresholds.from_settings(settings)), self.store, structures
        )
        self.structures = structures
        self.alert_settings = AlertSettings(self.store, self.cycle.engine, settings.memory_alert_channel_id)
        self._ops: MemoryOps | None = None
        self.fleet_cleanup: FleetCleanup | None = None  # PostgreSQL: answers /mem cleanup scope:fleet
        self._opened = False

    async def open(self) -> None:
        """Bring Polly's tables up to date, start listening for the fleet, restore the alert state;
        a StartupError saying what to check if the database cannot be opened."""
        # The edge's clock (discord.py's) becomes the process's: one clock for all of Polly.
        self._clock_handle = self._clock_handle or install_clock(self.clock)
        try:
            await self.db.create_tables()
        except Exception as exc:
            log.debug("Opening the database failed", exc_info=True)
            if self.owns_database:
                await self.db.dispose()
            raise database_failure(exc, self.settings) from None
        self._opened = True
        if self.cycle.fleet is not None:  # several processes may share this database: listen for them
            await self._refuse_a_twin(self.cycle.fleet)
            from polly.fleet_cleanup import FleetCleanup

            self.fleet_cleanup = FleetCleanup(self.db, self.settings.instance(), self._clean_for_the_fleet)
            await self.fleet_cleanup.start()
            self.cycle.fleet_listener = self.fleet_cleanup.ensure_listening
        await self.monitor.refresh_checkpoint_count()
        await self.cycle.restore_firing()  # before the loop: a still-firing alert is not new
        if self.cycle.runs is not None:  # how the previous run ended, reported once; this run's record
            s = self.settings
            container = self.monitor.read_container()
            await self.cycle.runs.begin(container, s.alert_critical_memory_percent, s.memory_check_interval_seconds)
        await self.store.restore_dropped()  # a summary after the restart still says how many
        await self.alert_settings.restore()  # the channel and thresholds operators set at runtime
        set_default_monitor(self.monitor)

    @property
    def ops(self) -> MemoryOps:
        """The /mem use cases on this layer, built with the first command (not every bot runs one)."""
        if self._ops is None:
            from polly import memory_ops

            s = self
            self._ops = memory_ops.MemoryOps(
                s.settings, s.db, s.monitor, s.cycle, s.store, s.alert_settings, lambda: s.fleet_cleanup
            )
        return self._ops

    async def _refuse_a_twin(self, fleet: Fleet) -> None:
        from polly.fleet import live_twin

        s = self.settings
        silent_after = s.fleet_silent_checks * s.memory_check_interval_seconds
        twin = live_twin(await fleet.store.members(), s.instance(), self.monitor.clock(), silent_after)
        if twin is not None:
            raise StartupError(
                f"{s.variable('instance_name')}={s.instance()!r} is already used by a live process (host "
                f"{twin.host}, pid {twin.pid}, heartbeat {twin.silent_for(self.monitor.clock()):.0f} s ago): "
                f"give each process sharing the database its own {s.variable('instance_name')}"
            )

    async def _clean_for_the_fleet(self, who: str) -> CleanupReport:
        return await self.cycle.cleanups.manual(who, dry_run=False)

    async def close(self) -> None:
        """Release everything `open()` and the constructor took; safe to call more than once."""
        session = self.cycle.cancel_trace()
        if session is not None:
            log.warning("The allocation trace started by %s was stopped: the memory extension unloaded", session.who)
        set_tracing(False)  # `/mem checkpoint trace:true` may have left its request
        if get_default_monitor_or_none() is self.monitor:
            set_default_monitor(None)
        if self._clock_handle is not None:  # the process's clock as it was before this layer
            remove_clock(self._clock_handle)
            self._clock_handle = None
        # Each step on its own: a database that is down or hangs must not keep the rest held.
        await self._release("the alert outbox", self.cycle.alerts.close())
        if self.cycle.runs is not None and self.cycle.runs.judged and self._opened:
            await self._release("the run record (clean stop)", self.cycle.runs.stop())
        if self.cycle.fleet is not None and self._opened:
            # another process leads the fleet from its next tick
            await self._release("the fleet lead", self.cycle.fleet.leader.release())
        if self.fleet_cleanup is not None:
            await self._release("the fleet cleanup listener", self.fleet_cleanup.stop())
            self.fleet_cleanup = None
            self.cycle.fleet_listener = None
        if self.owns_database:
            await self._release("the database", self.db.dispose())
        self.monitor.close()  # the /proc and cgroup files its ticks kept open
        self._opened = False

    async def _release(self, what: str, step: Awaitable[None]) -> None:
        try:
            await step
        except Exception as exc:
            log_failure(log, exc, "Could not release %s cleanly", what)
