"""A deliberate leak for the offline console's `:leak-objects` and the tests: objects of one class
kept alive by this module's global list, so a checkpoint comparison names the class and
`/mem inspect` shows who holds it."""

from __future__ import annotations


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
