"""The alert state machine: conditions in, fired / repeated / resolved transitions out.

`AlertEngine` keeps one state per (rule, subject): a condition must hold for `for_checks`
consecutive evaluations before it fires; while firing it repeats at most every `repeat_minutes`;
it resolves only once the rule says the value is clear (below the threshold minus the hysteresis
margin). Pure: `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from polly.alerts import ActiveAlert, AlertTransition, Condition, Rule, Thresholds, Transition
from polly.records import record, replace

if TYPE_CHECKING:  # a Protocol class costs ~4 KiB at import; checkers are its only readers
    from typing import Protocol

    class FiringRecord(Protocol):
        """What a stored alert event tells about an alert that was firing (polly.alert_store)."""

        @property
        def rule(self) -> str: ...
        @property
        def subject(self) -> str: ...
        @property
        def value(self) -> float: ...
        @property
        def threshold(self) -> float: ...
        @property
        def message(self) -> str: ...
        @property
        def at(self) -> datetime: ...
        @property
        def since(self) -> datetime | None: ...


@record(frozen=False)
class _State:
    held: int = 0
    cleared: int = 0  # consecutive clear checks while firing
    firing: bool = False
    since: datetime | None = None
    last_notified: datetime | None = None
    condition: Condition | None = None


class AlertEngine:
    """Turns conditions into fired / repeated / resolved transitions."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self._states: dict[tuple[Rule, str], _State] = {}

    def evaluate(self, conditions: Iterable[Condition], now: datetime) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        seen: set[tuple[Rule, str]] = set()
        repeat = timedelta(minutes=self.thresholds.repeat_minutes)
        for c in conditions:
            key = (c.rule, c.subject)
            seen.add(key)
            if not c.evaluated:  # its input failed: the state stays as it was for this tick
                continue
            state = self._states.get(key)
            if c.active:
                state = state or self._states.setdefault(key, _State(since=now))
                state.held += 1
                state.cleared = 0
                state.condition = c
                needed = c.for_checks if c.for_checks is not None else self.thresholds.for_checks
                if not state.firing and state.held >= needed:
                    state.firing, state.since, state.last_notified = True, now, now
                    out.append(self._transition(Transition.FIRED, c, now, now))
                elif state.firing and state.last_notified and now - state.last_notified >= repeat:
                    state.last_notified = now
                    out.append(self._transition(Transition.REPEATED, c, now, state.since or now))
            elif state is not None and state.firing:
                state.condition = c
                state.cleared = state.cleared + 1 if c.clear else 0
                if state.cleared >= c.clear_for_checks:
                    del self._states[key]
                    out.append(self._transition(Transition.RESOLVED, c, now, state.since or now))
                # else: inside the hysteresis band (or clear for too few checks yet), still firing
            elif state is not None:
                del self._states[key]  # pending condition broke off before the hold time
        out.extend(self._vanished(seen, now))
        return out

    def _vanished(self, seen: set[tuple[Rule, str]], now: datetime) -> list[AlertTransition]:
        """Subjects that no longer report (an unregistered structure) resolve; pending ones drop."""
        out = []
        for key in [k for k in self._states if k not in seen]:
            state = self._states.pop(key)
            if state.firing and state.condition is not None:
                c = replace(state.condition, detail=f"{state.condition.detail} (no longer reported)")
                out.append(self._transition(Transition.RESOLVED, c, now, state.since or now))
        return out

    @staticmethod
    def _transition(kind: Transition, c: Condition, now: datetime, since: datetime) -> AlertTransition:
        return AlertTransition(kind, c.rule, c.subject, c.value, c.threshold, c.detail, now, since)

    def firing_count(self) -> int:
        """How many alerts fire now (without building them, as active() does)."""
        return sum(
            1 for s in self._states.values() if s.firing and s.condition is not None and s.since and s.last_notified
        )

    def active(self) -> list[ActiveAlert]:
        shown = []
        for (rule, subject), s in self._states.items():
            if s.firing and s.condition is not None and s.since is not None and s.last_notified is not None:
                c = s.condition
                shown.append(ActiveAlert(rule, subject, c.value, c.threshold, c.detail, s.since, s.last_notified))
        return shown

    def pending(self) -> dict[tuple[Rule, str], int]:
        """Conditions holding but not yet firing, with how many checks they have held."""
        return {k: s.held for k, s in self._states.items() if not s.firing}

    def restore(self, firing: Iterable[FiringRecord]) -> None:
        """Take back alerts that were firing before a restart: they repeat and resolve as if the
        bot had never stopped, and do not fire again as new."""
        for stored in firing:
            rule = Rule(stored.rule)
            condition = Condition(rule, stored.subject, stored.value, stored.threshold, True, False, stored.message)
            since = stored.since or stored.at
            self._states[(rule, stored.subject)] = _State(
                held=1_000_000, firing=True, since=since, last_notified=stored.at, condition=condition
            )

    def forget(self, rule: Rule) -> None:
        """Drop every state of one rule without a transition (a fleet rule another process now
        evaluates: resolving it here would post a false "resolved")."""
        for key in [k for k in self._states if k[0] is rule]:
            del self._states[key]

    def set_threshold(self, name: str, value: float) -> None:
        self.thresholds = self.thresholds.updated(name, value)
