"""Persistence of alert events (kept newest-N) and of settings operators change at runtime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update

from polly.alerts import AlertTransition
from polly.enhanced_database import Database
from polly.models import AlertEvent, RuntimeSetting

ALERT_CHANNEL_KEY = "alert_channel_id"
THRESHOLD_PREFIX = "threshold:"


@dataclass(frozen=True)
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


class AlertStore:
    """Alert history and runtime settings in the database."""

    def __init__(self, db: Database, keep: int) -> None:
        self.db = db
        self.keep = keep

    async def record(self, transition: AlertTransition) -> int:
        """Store one transition, trim the history to the newest `keep`; return the event id."""
        async with self.db.session_scope() as session:
            row = AlertEvent(
                at=transition.at,
                kind=transition.kind.value,
                rule=transition.rule.value,
                subject=transition.subject[:200],
                value=transition.value,
                threshold=transition.threshold,
                message=transition.detail,
            )
            session.add(row)
            await session.flush()
            newest = select(AlertEvent.id).order_by(AlertEvent.id.desc()).limit(self.keep)
            await session.execute(delete(AlertEvent).where(AlertEvent.id.not_in(newest)))
            return row.id

    async def mark_delivered(self, event_id: int) -> None:
        async with self.db.session_scope() as session:
            await session.execute(update(AlertEvent).where(AlertEvent.id == event_id).values(delivered=True))

    async def recent(self, limit: int = 10) -> list[StoredAlertEvent]:
        """Newest first."""
        async with self.db.session_scope() as session:
            rows = await session.scalars(select(AlertEvent).order_by(AlertEvent.id.desc()).limit(limit))
            return [
                StoredAlertEvent(
                    r.id,
                    r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
                    r.kind,
                    r.rule,
                    r.subject,
                    r.value,
                    r.threshold,
                    r.message,
                    r.delivered,
                )
                for r in rows
            ]

    async def get_setting(self, key: str) -> str | None:
        async with self.db.session_scope() as session:
            row = await session.get(RuntimeSetting, key)
            return row.value if row is not None else None

    async def set_setting(self, key: str, value: str) -> None:
        async with self.db.session_scope() as session:
            row = await session.get(RuntimeSetting, key)
            if row is None:
                session.add(RuntimeSetting(key=key, value=value))
            else:
                row.value = value

    async def save_threshold(self, name: str, value: float) -> None:
        await self.set_setting(THRESHOLD_PREFIX + name, repr(float(value)))

    async def thresholds(self) -> dict[str, float]:
        """Thresholds operators changed at runtime, by name."""
        async with self.db.session_scope() as session:
            rows = await session.scalars(select(RuntimeSetting).where(RuntimeSetting.key.startswith(THRESHOLD_PREFIX)))
            return {row.key.removeprefix(THRESHOLD_PREFIX): float(row.value) for row in rows}

    async def alert_channel_id(self, default: int | None) -> int | None:
        """The channel set with /mem alerts, else MEMORY_ALERT_CHANNEL_ID."""
        stored = await self.get_setting(ALERT_CHANNEL_KEY)
        return int(stored) if stored else default
