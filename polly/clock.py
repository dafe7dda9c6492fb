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


# Clocks set by memory layers, newest last: the newest is the process's clock. A layer that closes
# takes its own entry out, in whatever order layers close (a reload, several bots in one process).
_installed: list[tuple[object, Clock]] = []


def install_clock(clock: Clock) -> object:
    """Make `clock` the process's clock (aware UTC datetimes); returns a handle for `remove_clock`."""
    handle = object()
    _installed.append((handle, clock))
    return handle


def remove_clock(handle: object) -> None:
    """Take back the clock `install_clock` returned `handle` for; the one before it applies again."""
    _installed[:] = [(h, c) for h, c in _installed if h is not handle]


def current_clock() -> Clock:
    return _installed[-1][1] if _installed else system_clock


def now() -> datetime:
    """The current time, aware, in UTC."""
    return current_clock()()


def timestamp() -> float:
    """The current time as Unix seconds."""
    return current_clock()().timestamp()
