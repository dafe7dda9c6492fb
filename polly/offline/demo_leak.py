"""A deliberate leak for the offline console's `:leak-objects` and the tests: objects of one class
kept alive by this module's global list, so a checkpoint comparison names the class and
`/mem inspect` shows who holds it."""

from __future__ import annotations

from polly import clock
from polly.bounded import BoundedDict
from polly.registry import registry


class LeakyWidget:
    """A stand-in for what a bot leaks: a little payload and a repr that must never be shown."""

    def __init__(self, number: int, secret: str = "") -> None:
        self.number = number
        self.payload = bytes(256)
        self.secret = secret

    def __repr__(self) -> str:
        return f"LeakyWidget(number={self.number}, secret={self.secret!r})"


leaked_widgets: list[LeakyWidget] = []


def leak(count: int, secret: str = "") -> int:
    """Keep `count` more widgets alive; return how many are held now."""
    leaked_widgets.extend(LeakyWidget(len(leaked_widgets) + i, secret) for i in range(count))
    return len(leaked_widgets)


def release() -> None:
    leaked_widgets.clear()


# `:leak N` in a bot that names no structure of its own: failures recorded in a bounded, tracked
# dict, so the structure-fill alert and /mem cleanup have something to act on.
_failures: BoundedDict | None = None
_next_failure = 10_000_000


def record_failures(count: int) -> str:
    """Record `count` failures in the tracked `offline_failures` dict; say how full it is."""
    global _failures, _next_failure
    if _failures is None or registry.get("offline_failures") is None:
        _failures = registry.bounded_dict(
            "offline_failures",
            max_size=1000,
            max_age_minutes=60,
            timestamp_key="last_attempt",
            description="the offline console's :leak failures",
        )
    now = clock.timestamp()
    for key in range(_next_failure, _next_failure + count):
        _failures[key] = {"count": 1, "last_attempt": now}
    _next_failure += count
    return f"Recorded {count:,} failures; offline_failures holds {len(_failures):,} of at most {_failures.max_size:,}"
