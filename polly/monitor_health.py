"""How the monitor loop itself is doing: ticks, errors, back-off, what waits for delivery.

Written by the cycle (ticks, back-off) and the alert outbox (delivery); read by /mem stats, /health
and /metrics. Its own module so that both writers depend on it and not on each other."""

from __future__ import annotations

from datetime import datetime

from polly.records import record


@record(frozen=False)
class MonitorHealth:
    """How the monitor loop itself is doing (rendered by /mem stats and /health)."""

    ticks: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_tick_at: datetime | None = None
    last_error: str | None = None
    backoff_factor: int = 1
    undelivered: int = 0
    rules_not_evaluated: int = 0  # in the last tick: rule inputs that failed (their alerts kept as they were)
    failed_steps: tuple[str, ...] = ()  # in the last tick: isolated steps that failed (the rest ran)
