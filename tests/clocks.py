"""The one fake clock of the tests and benchmarks: an injected `clock=` that time moves through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 1, tzinfo=UTC)  # SimCord's virtual clock starts here too


class FakeClock:
    """Returns `now`; `advance()` moves it. With `step_s`, each reading first moves it by that much
    (a monitor sampled once per check interval)."""

    def __init__(self, start: datetime = START, *, step_s: float = 0.0) -> None:
        self.now = start
        self.step = timedelta(seconds=step_s)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
