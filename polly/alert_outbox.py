"""Alert delivery: the outbox between the alert engine and wherever alerts are posted.

Every transition is stored before it is posted (`polly.alert_store`: the database is the queue);
one the database refused waits in memory (bounded) and still goes out. `deliver(sink)` posts what
waits, oldest first, one delivery at a time: the first INDIVIDUAL_POSTS one by one, the rest as one
summary (which also says how many were dropped unposted), so a channel is not flooded after an
outage and nothing disappears unannounced. The sink is the only Discord-facing part
(`polly.ext.alert_delivery` implements it); everything here is tested with a fake one.

Each post is three steps: record the attempt, post, mark delivered. Between them:
- the attempt cannot be recorded: nothing is posted this round; the event waits in the database.
- the sink fails: the event waits and is posted at a later delivery (same nonce: should the failed
  post have reached Discord after all, Discord drops the repeat).
- the mark fails after the post: this process remembers the event, never posts it again and
  retries the mark at each delivery.
- the process stops after the attempt and before the mark: the next start finds the attempt. It
  posts again with the same nonce, which Discord deduplicates within its nonce window; once the
  attempt is older than NONCE_WINDOW the post says it may repeat a message sent just before the
  restart. Never a silent double post.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from polly.alert_store import FLEET_OWNER, AlertStore, StoredAlertEvent
from polly.alerts import AlertTransition, Rule
from polly.database_errors import log_failure
from polly.records import record

if TYPE_CHECKING:
    from polly.monitor_health import MonitorHealth
    from polly.registry import StructureRegistry

log = logging.getLogger(__name__)

INDIVIDUAL_POSTS = 10
QUEUE_READ = 2000  # undelivered events read at once; the table holds at most ALERT_HISTORY_SIZE
MEMORY_QUEUE_SIZE = 100
MEMORY_QUEUE_NAME = "alert_outbox"  # its name in the registry
# Discord drops a message whose nonce its author used "within the past few minutes"; older than
# this, a repeat is possible and the post says so.
NONCE_WINDOW = timedelta(minutes=2)
MAY_REPEAT_NOTE = "(may repeat a message sent just before the restart)"


class SinkUnavailable(Exception):
    """There is nowhere to post (no alert channel set): the alerts wait; not a failure."""


@record
class OutgoingAlert:
    """One alert to post: what changed, the nonce that makes a repeat harmless, and whether an
    earlier post of it was interrupted by a restart too long ago for the nonce to help."""

    transition: AlertTransition
    event_id: int | None = None  # None: waiting in memory (the database refused it)
    nonce: str = ""  # one per alert: a repeat of it within Discord's nonce window is dropped
    may_repeat: bool = False

    @property
    def note(self) -> str | None:
        return MAY_REPEAT_NOTE if self.may_repeat else None


if TYPE_CHECKING:  # a Protocol class costs ~4 KiB at import; checkers are its only readers
    from typing import Protocol

    class AlertSink(Protocol):
        """Where alerts are posted (the Discord side implements it, one per delivery)."""

        async def open(self) -> None:
            """Find the place to post; SinkUnavailable when none is set, any other error: it failed."""

        async def post(self, alert: OutgoingAlert) -> None:
            """Post one alert; raise when it was not posted."""

        async def post_summary(self, alerts: Sequence[OutgoingAlert], dropped: int, nonce: str) -> None:
            """Post many alerts as one message, saying `dropped` more were dropped unposted."""


@record
class AlertEventOut:
    """A transition queued for delivery, with its stored id (None when the database refused it)."""

    event_id: int | None
    transition: AlertTransition


def nonce(*parts: object) -> str:
    """A message nonce (at most 25 characters, as Discord allows) that names these parts."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=9).hexdigest()
    return f"polly{digest}"


def _memory_nonce(transition: AlertTransition) -> str:
    return nonce("memory", transition.kind.value, transition.rule.value, transition.subject, transition.at.isoformat())


class AlertOutbox:
    """Queues transitions (database first, memory when it refuses) and delivers them through a sink."""

    def __init__(
        self,
        store: AlertStore | None,
        structures: StructureRegistry,
        clock: Callable[[], datetime],
        health: MonitorHealth,
    ) -> None:
        self.store = store
        self.clock = clock
        self.health = health  # undelivered and errors, as /mem stats and /health show them
        self.memory = structures.bounded_deque(
            MEMORY_QUEUE_NAME, MEMORY_QUEUE_SIZE, "alerts the database refused, waiting"
        )
        self._structures = structures
        self._lock = asyncio.Lock()
        self._attempted_here: set[int] = set()  # attempts of this process: their outcome is known
        self._inherited: dict[int, datetime] = {}  # attempts of an earlier process, by event: when
        self._posted_unmarked: set[int] = set()  # posted, but the database did not take the mark yet

    # ------------------------------------------------------------ queueing

    async def add(self, transition: AlertTransition, *, ask_database: bool = True) -> AlertEventOut:
        """Store a transition for delivery; in memory when the database refuses it (or, with
        `ask_database=False`, has just refused another)."""
        level = logging.INFO if transition.kind == "resolved" else logging.WARNING
        log.log(level, "Alert %s: %s (%s): %s", transition.kind, transition.rule, transition.subject, transition.detail)
        if self.store is not None and ask_database:
            try:
                return AlertEventOut(await self._record(transition), transition)
            except Exception as exc:
                self.health.errors += 1
                log_failure(
                    log,
                    exc,
                    "Could not store alert event %s/%s: it waits in memory",
                    transition.rule,
                    transition.subject,
                )
        event = AlertEventOut(None, transition)
        self.memory.append(event)
        return event

    async def add_all(self, transitions: Iterable[AlertTransition]) -> tuple[AlertEventOut, ...]:
        """`add` each, in order; once the database refused one, the rest wait in memory without
        asking it again (a locked SQLite makes each try wait out its busy timeout: 5 s an event)."""
        events: list[AlertEventOut] = []
        refused = False
        for transition in transitions:
            events.append(await self.add(transition, ask_database=not refused))
            refused = refused or (self.store is not None and events[-1].event_id is None)
        return tuple(events)

    async def _record(self, transition: AlertTransition) -> int:
        assert self.store is not None
        owner = FLEET_OWNER if transition.rule is Rule.INSTANCE_SILENT else None
        return await self.store.record(transition, owner)

    async def store_memory(self) -> int:
        """Move what waits in memory into the database, oldest first, while it takes them (then a
        restart no longer loses them); return how many still wait in memory."""
        if self.store is None:
            return len(self.memory)
        for event in list(self.memory):
            try:
                await self._record(event.transition)
            except Exception:
                log.debug("The database still refuses the alerts waiting in memory", exc_info=True)
                break
            self.memory.remove(event)
        return len(self.memory)

    async def close(self) -> None:
        """Store what waits in memory if the database takes it now; say what is lost otherwise."""
        lost = await self.store_memory()
        if lost:
            log.warning(
                "%d alert event(s) the database refused are lost with this process (oldest: %s)",
                lost,
                f"{self.memory[0].transition.kind.value} {self.memory[0].transition.rule.value}",
            )
        self._structures.unregister(MEMORY_QUEUE_NAME)

    async def waiting(self) -> int:
        """Alert events waiting for delivery: in the database and in memory."""
        try:
            stored = await self.store.count_undelivered() if self.store is not None else 0
        except Exception as exc:  # the database is down: what waits in memory at least
            log_failure(log, exc, "Could not count the undelivered alert events")
            stored = 0
        return stored + len(self.memory)

    # ------------------------------------------------------------ delivery

    async def deliver(self, make_sink: Callable[[], AlertSink]) -> int:
        """Post what waits, oldest first; return how many were delivered. Never raises: a failure
        is counted and logged, and what was not posted waits for the next delivery. `make_sink` is
        called only when something waits (the Discord side's code loads with the first alert)."""
        async with self._lock:
            try:
                return await self._deliver(make_sink)
            finally:
                await self.store_memory()  # what still waits in memory: into the database, if it takes it

    async def _deliver(self, make_sink: Callable[[], AlertSink]) -> int:
        await self._retry_marks()
        pending = await self._pending()
        if not pending:
            self.health.undelivered = 0
            return 0
        try:
            sink = make_sink()
            await sink.open()
        except SinkUnavailable as exc:
            log.warning("%d alert(s) waiting: %s", len(pending), exc)
            self.health.undelivered = len(pending)
            return 0
        except Exception as exc:
            return self._failed(exc, len(pending))
        return await self._post(sink, pending)

    async def _post(self, sink: AlertSink, pending: list[OutgoingAlert]) -> int:
        individual, rest = pending[:INDIVIDUAL_POSTS], pending[INDIVIDUAL_POSTS:]
        delivered = 0
        try:
            for alert in individual:
                await self._attempt([alert])
                await sink.post(alert)
                await self._mark([alert])
                delivered += 1
            dropped = self.store.dropped_undelivered if self.store is not None else 0
            if rest or dropped:
                await self._attempt(rest)
                parts = [a.nonce for a in rest] or ["dropped", self.clock().isoformat()]
                await sink.post_summary(rest, dropped, nonce(*parts, dropped))
                if self.store is not None and dropped:
                    try:
                        await self.store.announced_dropped(dropped)
                    except Exception as exc:  # said once already: only a later summary would repeat it
                        log_failure(log, exc, "Could not record that %d dropped alert(s) were announced", dropped)
                await self._mark(rest)
                delivered += len(rest)
        except Exception as exc:  # the sink or the database refused, or a bug: the rest waits
            return self._failed(exc, len(pending) - delivered, delivered)
        self.health.undelivered = 0
        return delivered

    async def _pending(self) -> list[OutgoingAlert]:
        stored: Sequence[StoredAlertEvent] = []
        if self.store is not None:
            try:
                stored = await self.store.undelivered(QUEUE_READ)
            except Exception as exc:
                self.health.errors += 1
                log_failure(log, exc, "Could not read the alert queue; delivering what waits in memory")
        now = self.clock()
        items = [self._outgoing(e, now) for e in stored if e.id not in self._posted_unmarked]
        items += [OutgoingAlert(e.transition, None, _memory_nonce(e.transition)) for e in list(self.memory)]
        return sorted(items, key=lambda a: a.transition.at)

    def _outgoing(self, event: StoredAlertEvent, now: datetime) -> OutgoingAlert:
        if event.attempted_at is not None and event.id not in self._attempted_here | self._inherited.keys():
            # Attempted by a process before this one (a restart, or a fleet leader that stopped):
            # remember when, since Discord's nonce window counts from the first post.
            self._inherited[event.id] = event.attempted_at
            log.warning("Alert event %d was being posted when the bot stopped; posting it again", event.id)
        inherited = self._inherited.get(event.id)
        may_repeat = inherited is not None and now - inherited > NONCE_WINDOW
        return OutgoingAlert(
            event.transition(), event.id, nonce(event.instance, event.id, event.at.isoformat()), may_repeat
        )

    async def _attempt(self, alerts: Iterable[OutgoingAlert]) -> None:
        """Record the attempt before the post; raises (nothing is posted) when the database refuses."""
        ids = [a.event_id for a in alerts if a.event_id is not None]
        if ids and self.store is not None:
            await self.store.mark_attempted(ids, self.clock())
            self._attempted_here.update(ids)

    async def _mark(self, alerts: Sequence[OutgoingAlert]) -> None:
        for alert in alerts:
            if alert.event_id is None:
                self._forget_from_memory(alert.transition)
        ids = [a.event_id for a in alerts if a.event_id is not None]
        self._posted_unmarked.update(ids)
        self._attempted_here.difference_update(ids)
        for event_id in ids:
            self._inherited.pop(event_id, None)
        await self._retry_marks()

    def _forget_from_memory(self, transition: AlertTransition) -> None:
        for event in list(self.memory):
            if event.transition is transition:
                self.memory.remove(event)
                return

    async def _retry_marks(self) -> None:
        if not self._posted_unmarked or self.store is None:
            return
        try:
            await self.store.mark_delivered(self._posted_unmarked)
            self._posted_unmarked.clear()
        except Exception as exc:
            self.health.errors += 1
            log_failure(log, exc, "Could not mark %d posted alert(s) delivered; retrying", len(self._posted_unmarked))

    def _failed(self, exc: BaseException, waiting: int, delivered: int = 0) -> int:
        self.health.errors += 1
        self.health.undelivered = waiting
        # str(exc), not exc: a handler that keeps records (a buffer, a test's capture) would keep the
        # exception's traceback, and through its frames the sink and its cog, alive.
        log.warning("Could not post %d alert(s) (%s: %s); retrying next tick", waiting, type(exc).__name__, str(exc))
        return delivered

    def failed_unexpectedly(self) -> None:
        """A delivery raised past `deliver` (a bug of the caller): count it; what waits stays queued."""
        self.health.errors += 1
