"""Alert events in the database, which is also the delivery queue, and the settings operators
change at runtime.

Every transition is stored before it is posted and marked delivered after; what waits survives
a restart. The table is bounded by construction: the newest ALERT_HISTORY_SIZE delivered events,
and at most as many undelivered ones (older undelivered ones are dropped and counted, so the
next delivery can say so), plus the latest delivered event of each alert still firing, which a
restart needs to neither fire it again as new nor forget it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import and_, delete, func, insert, or_, select, true, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from polly import clock
from polly.alerts import AlertTransition, Rule, Transition
from polly.enhanced_database import Database
from polly.models import alert_events as events
from polly.models import runtime_settings as settings_table
from polly.records import record

log = logging.getLogger(__name__)

ALERT_CHANNEL_KEY = "alert_channel_id"
FLEET_OWNER = "fleet"  # the instance of fleet rules' events: whichever process leads delivers them
THRESHOLD_PREFIX = "threshold:"
DROPPED_PREFIX = "alerts_dropped:"  # + the instance: dropped undelivered events not yet announced
# The kinds of event an alert still firing ends on (a report, such as a post-mortem, never fires)
FIRING_KINDS = (Transition.FIRED.value, Transition.REPEATED.value)


@record
class StoredAlertEvent:
    id: int
    at: datetime
    kind: str
    rule: str
    subject: str
    value: float
    threshold: float
    message: str
    delivered: bool
    since: datetime | None = None
    instance: str | None = None
    attempted_at: datetime | None = None  # a post was attempted then (and not marked delivered)

    def transition(self) -> AlertTransition:
        """The transition this event recorded, as the alert renderer takes it."""
        return AlertTransition(
            Transition(self.kind),
            Rule(self.rule),
            self.subject,
            self.value,
            self.threshold,
            self.message,
            self.at,
            self.since or self.at,
        )


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def _stored(r: Row) -> StoredAlertEvent:
    return StoredAlertEvent(
        r.id,
        _aware(r.at),  # type: ignore[arg-type]
        r.kind,
        r.rule,
        r.subject,
        r.value,
        r.threshold,
        r.message,
        r.delivered,
        _aware(r.since),
        r.instance,
        _aware(r.attempted_at),
    )


class AlertStore:
    """Alert history and runtime settings in the database."""

    def __init__(self, db: Database, keep: int, instance: str | None = None) -> None:
        self.db = db
        self.keep = keep
        self.instance = instance
        self.include_fleet = False  # True while this process leads the fleet: it delivers fleet alerts
        self.dropped_undelivered = 0  # since the last delivery said so

    def _mine(self) -> ColumnElement[bool]:
        """This process's events: processes sharing one database (a fleet) each deliver, restore
        and trim their own. Events from before the instance column count as everyone's."""
        if self.instance is None:
            return true()
        owners = [self.instance, FLEET_OWNER] if self.include_fleet else [self.instance]
        return or_(events.c.instance.in_(owners), events.c.instance.is_(None))

    async def record(self, transition: AlertTransition, owner: str | None = None) -> int:
        """Store one transition (undelivered) as this instance's, or `owner`'s (FLEET_OWNER for fleet
        rules); trim the table; return the event id."""
        async with self.db.transaction() as conn:
            return await self._insert(conn, transition, owner)

    async def record_with_setting(self, transition: AlertTransition | None, key: str, value: str) -> int | None:
        """Store a transition (if any) and a setting in one transaction: both or neither."""
        async with self.db.transaction() as conn:
            event_id = await self._insert(conn, transition, None) if transition is not None else None
            await self._put_setting(conn, key, value)
            return event_id

    async def _insert(self, conn: AsyncConnection, transition: AlertTransition, owner: str | None) -> int:
        added = insert(events).values(
            at=transition.at,
            kind=transition.kind.value,
            rule=transition.rule.value,
            subject=transition.subject[:200],
            value=transition.value,
            threshold=transition.threshold,
            message=transition.detail,
            delivered=False,
            since=transition.since,
            instance=owner or self.instance,
        )
        # The table is a clause without a primary key (polly.models), so the id is asked for.
        if conn.dialect.insert_returning:
            event_id = int((await conn.execute(added.returning(events.c.id))).scalar_one())
        else:  # SQLite before 3.35: the cursor's rowid is the id (an INTEGER PRIMARY KEY)
            event_id = int((await conn.execute(added)).lastrowid)
        # What a restart needs is never trimmed: the latest (posted) event of each alert still
        # firing. An undelivered one dropped from a full queue was never seen: firing anew is right.
        latest = select(func.max(events.c.id)).where(self._mine()).group_by(events.c.rule, events.c.subject)
        firing = select(events.c.id).where(events.c.id.in_(latest), events.c.kind.in_(FIRING_KINDS))
        for delivered in (True, False):
            kind = and_(events.c.delivered.is_(delivered), self._mine())
            newest = select(events.c.id).where(kind).order_by(events.c.id.desc()).limit(self.keep)
            trimmed = delete(events).where(kind, events.c.id.not_in(newest))
            if delivered:
                trimmed = trimmed.where(events.c.id.not_in(firing))
            dropped = await conn.execute(trimmed)
            if not delivered and dropped.rowcount:
                self.dropped_undelivered += dropped.rowcount
                # Kept in the database too: a restart before the summary still says how many.
                await self._put_setting(conn, self._dropped_key(), str(self.dropped_undelivered))
                log.warning(
                    "%d undelivered alert event(s) dropped: more than ALERT_HISTORY_SIZE=%d were waiting",
                    dropped.rowcount,
                    self.keep,
                )
        return event_id

    async def undelivered(self, limit: int = 1000) -> list[StoredAlertEvent]:
        """Events waiting for delivery, oldest first."""
        async with self.db.transaction() as conn:
            query = select(events).where(events.c.delivered.is_(False), self._mine()).order_by(events.c.id).limit(limit)
            return [_stored(r) for r in await conn.execute(query)]

    async def count_undelivered(self) -> int:
        async with self.db.transaction() as conn:
            waiting = select(func.count(events.c.id)).where(events.c.delivered.is_(False), self._mine())
            return await conn.scalar(waiting) or 0

    async def mark_delivered(self, event_ids: Iterable[int]) -> None:
        ids = list(event_ids)
        if not ids:
            return
        async with self.db.transaction() as conn:
            await conn.execute(update(events).where(events.c.id.in_(ids)).values(delivered=True))

    async def mark_attempted(self, event_ids: Iterable[int], at: datetime) -> None:
        """Record that these events are about to be posted (before the post, so a restart in
        between is known)."""
        ids = list(event_ids)
        if not ids:
            return
        async with self.db.transaction() as conn:
            await conn.execute(update(events).where(events.c.id.in_(ids)).values(attempted_at=at))

    async def recent(self, limit: int = 10) -> list[StoredAlertEvent]:
        """Newest first."""
        async with self.db.transaction() as conn:
            rows = await conn.execute(select(events).order_by(events.c.id.desc()).limit(limit))
            return [_stored(r) for r in rows]

    async def since(self, start: datetime, limit: int = 500) -> list[StoredAlertEvent]:
        """Events from `start`, oldest first (for the chart's markers)."""
        async with self.db.transaction() as conn:
            query = select(events).where(events.c.at >= start, self._mine()).order_by(events.c.id).limit(limit)
            return [_stored(r) for r in await conn.execute(query)]

    async def firing(self) -> list[StoredAlertEvent]:
        """For each alert whose latest event fired or repeated (not resolved): that event, with the
        time it first fired. What a restart must remember so it neither re-fires nor forgets."""
        async with self.db.transaction() as conn:
            rows = [_stored(r) for r in await conn.execute(select(events).where(self._mine()).order_by(events.c.id))]
        latest: dict[tuple[str, str], StoredAlertEvent] = {}
        for event in rows:
            latest[(event.rule, event.subject)] = event
        return [e for e in latest.values() if e.kind in FIRING_KINDS]

    async def get_setting(self, key: str) -> str | None:
        async with self.db.transaction() as conn:
            return await conn.scalar(select(settings_table.c.value).where(settings_table.c.key == key))

    async def set_setting(self, key: str, value: str) -> None:
        async with self.db.transaction() as conn:
            await self._put_setting(conn, key, value)

    @staticmethod
    async def _put_setting(conn: AsyncConnection, key: str, value: str) -> None:
        now = clock.now()
        changed = await conn.execute(
            update(settings_table).where(settings_table.c.key == key).values(value=value, updated_at=now)
        )
        if not changed.rowcount:
            await conn.execute(insert(settings_table).values(key=key, value=value, updated_at=now))

    def _dropped_key(self) -> str:
        return f"{DROPPED_PREFIX}{self.instance or ''}"[:64]

    async def restore_dropped(self) -> int:
        """How many undelivered events were dropped and not yet announced (kept across restarts)."""
        stored = await self.get_setting(self._dropped_key())
        self.dropped_undelivered = int(stored) if stored else 0
        return self.dropped_undelivered

    async def announced_dropped(self, count: int) -> None:
        """A summary said `count` were dropped: no later summary says it again."""
        self.dropped_undelivered = max(0, self.dropped_undelivered - count)
        await self.set_setting(self._dropped_key(), str(self.dropped_undelivered))

    async def save_threshold(self, name: str, value: float) -> None:
        await self.set_setting(THRESHOLD_PREFIX + name, repr(float(value)))

    async def thresholds(self) -> dict[str, float]:
        """Thresholds operators changed at runtime, by name."""
        async with self.db.transaction() as conn:
            rows = await conn.execute(select(settings_table).where(settings_table.c.key.startswith(THRESHOLD_PREFIX)))
            return {row.key.removeprefix(THRESHOLD_PREFIX): float(row.value) for row in rows}

    async def alert_channel_id(self, default: int | None) -> int | None:
        """The channel set with /mem alerts, else MEMORY_ALERT_CHANNEL_ID."""
        stored = await self.get_setting(ALERT_CHANNEL_KEY)
        return int(stored) if stored else default
