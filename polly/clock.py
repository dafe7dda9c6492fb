"""The process's one clock: what every part of Polly that has no clock handed in reads.

Injected at the process's edge: the extension sets discord.py's (`discord.utils.utcnow`, which is
also SimCord's virtual clock in tests) when it builds its memory layer, so cleanup ages, profile
times, history buckets, fleet answers and the monitor's samples all agree. Without a host it is the
system's UTC clock. Nothing else in `polly/` reads the time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Clock = system_clock


def use_clock(clock: Clock) -> None:
    """Make `clock` the process's clock (aware UTC datetimes)."""
    global _clock
    _clock = clock


def now() -> datetime:
    """The current time, aware, in UTC."""
    return _clock()


def timestamp() -> float:
    """The current time as Unix seconds."""
    return _clock().timestamp()
