"""/mem alerts' runtime changes and figures: a threshold stored then applied, what waits."""

from __future__ import annotations

import logging

from polly.alert_store import AlertStore
from polly.alerts import ThresholdError
from polly.monitor_cycle import MonitorCycle

log = logging.getLogger(__name__)


async def set_threshold(cycle: MonitorCycle, store: AlertStore, name: str | None, value: float | None) -> str:
    """Validate, store, then apply one threshold; a ThresholdError says what is allowed or that
    the database refused it (and nothing changed)."""
    if name is None or value is None:
        raise ThresholdError("Give both, e.g. threshold:memory_percent value:85.")
    engine = cycle.engine
    changed = engine.thresholds.updated(name, value)
    stored = getattr(changed, name)
    try:
        await store.save_threshold(name, stored)
    except Exception:
        log.exception("Could not store threshold %s", name)
        raise ThresholdError(
            f"The database is unavailable, so {name} was not changed (still {getattr(engine.thresholds, name):g}): "
            "try again in a moment."
        ) from None
    engine.thresholds = changed
    return f"Threshold {name} is now {stored:g}."


def channel_text(channel_id: int | None) -> str:
    if channel_id is None:
        return "not set: choose one with /mem alerts channel:#your-ops-channel"
    return f"<#{channel_id}>"
