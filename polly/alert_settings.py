"""The alert settings operators change at runtime: the alert channel and the thresholds.

Stored before they apply (a change the database refuses changes nothing), restored when the memory
layer opens; held here, in the core, so that they outlive any cog that shows them."""

from __future__ import annotations

import asyncio
import logging

from polly.alert_engine import AlertEngine
from polly.alert_store import ALERT_CHANNEL_KEY, AlertStore
from polly.alerts import ThresholdError

log = logging.getLogger(__name__)


class NoAlertChannelError(ValueError):
    """What needs the alert channel (a trace's results) was asked for before one was set."""


class AlertSettings:
    """The alert channel and the thresholds in force (environment first, then runtime changes)."""

    def __init__(self, store: AlertStore, engine: AlertEngine, channel_id: int | None) -> None:
        self.store = store
        self.engine = engine
        self.channel_id = channel_id  # MEMORY_ALERT_CHANNEL_ID until restore() reads a runtime choice
        # One change at a time: two at once would each start from the same thresholds and the
        # second would put back what the first changed.
        self._changing = asyncio.Lock()

    async def restore(self) -> None:
        """Take back what operators set at runtime; the environment's values when the database
        cannot say (logged), and a stored threshold no longer allowed is skipped (logged)."""
        try:
            self.channel_id = await self.store.alert_channel_id(self.channel_id)
            stored = await self.store.thresholds()
        except Exception:
            log.exception("Could not read the alert settings stored at runtime; using the environment's")
            return
        for name, value in stored.items():
            try:
                self.engine.set_threshold(name, value)
            except ThresholdError as exc:
                log.warning("Ignoring the stored threshold %s=%g: %s", name, value, exc)

    async def set_channel(self, channel_id: int) -> None:
        """Store, then use, a new alert channel (a database error propagates: nothing changed)."""
        await self.store.set_setting(ALERT_CHANNEL_KEY, str(channel_id))
        self.channel_id = channel_id

    async def set_threshold(self, name: str | None, value: float | None) -> str:
        """Validate, store, then apply one threshold; a ThresholdError says what is allowed or that
        the database refused it (and nothing changed)."""
        if name is None or value is None:
            raise ThresholdError("Give both, e.g. threshold:memory_percent value:85.")
        async with self._changing:
            return await self._set_threshold(name, value)

    async def _set_threshold(self, name: str, value: float) -> str:
        changed = self.engine.thresholds.updated(name, value)
        stored = getattr(changed, name)
        try:
            await self.store.save_threshold(name, stored)
        except Exception:
            log.exception("Could not store threshold %s", name)
            current = getattr(self.engine.thresholds, name)
            raise ThresholdError(
                f"The database is unavailable, so {name} was not changed (still {current:g}): try again in a moment."
            ) from None
        self.engine.thresholds = changed
        return f"Threshold {name} is now {stored:g}."
