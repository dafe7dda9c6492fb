"""Alert rules and the alert state machine: pure functions of a sample and an injected `now`.

Each rule turns a sample into conditions (rule, subject, value, threshold). `AlertEngine`
keeps one state per (rule, subject): a condition must hold for `for_checks` consecutive
evaluations before it fires; while firing it repeats at most every `repeat_minutes`; it
resolves only once the value falls below the threshold minus the hysteresis margin.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Protocol

from polly.config import SETTING_SPECS, Settings, hysteresis_conflict
from polly.formatting import format_bytes, format_duration
from polly.heap_types import TypeGrowth
from polly.samples import MemorySample
from polly.trend import Trend


class Rule(enum.StrEnum):
    MEMORY = "memory_percent"
    POOL_OVERFLOW = "pool_overflow"
    POOL_TIMEOUT = "pool_timeouts"
    STRUCTURE_FILL = "structure_fill"
    CHECKPOINT_GROWTH = "checkpoint_growth"
    LEAK_TREND = "leak_trend"


RULE_TITLES = {
    Rule.MEMORY: "Memory above threshold",
    Rule.POOL_OVERFLOW: "Database pool in overflow",
    Rule.POOL_TIMEOUT: "Database pool checkout timeouts",
    Rule.STRUCTURE_FILL: "Tracked structure filling up",
    Rule.CHECKPOINT_GROWTH: "Memory grew between checkpoints",
    Rule.LEAK_TREND: "Memory leak trend",
}

RULE_HINTS = {
    Rule.MEMORY: "Run /mem cleanup, then /mem checkpoint to see what grew.",
    Rule.POOL_OVERFLOW: "Raise DB_POOL_SIZE, or look for sessions held open too long.",
    Rule.POOL_TIMEOUT: "Raise DB_POOL_SIZE / DB_MAX_OVERFLOW, or look for sessions held open too long.",
    Rule.STRUCTURE_FILL: "Run /mem cleanup; if it refills, raise its limit or find who writes to it.",
    Rule.CHECKPOINT_GROWTH: "Compare checkpoints with /mem checkpoint (trace:true shows allocation sites).",
    Rule.LEAK_TREND: "Take /mem checkpoint trace:true now and again later to find the growing allocations.",
}


class ThresholdError(ValueError):
    """A runtime threshold change that is not allowed; the message says what is."""


class Transition(enum.StrEnum):
    FIRED = "fired"
    REPEATED = "repeated"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Thresholds:
    """The alert thresholds in force; changeable at runtime with `replace()`."""

    memory_percent: float = 80.0
    pool_overflow_percent: float = 50.0
    dict_fill_percent: float = 80.0
    checkpoint_growth_percent: float = 20.0
    leak_horizon_hours: float = 24.0
    leak_min_mib_per_hour: float = 1.0
    for_checks: int = 3
    repeat_minutes: float = 60.0
    hysteresis_percent: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            memory_percent=settings.alert_memory_percent,
            pool_overflow_percent=settings.alert_pool_overflow_percent,
            dict_fill_percent=settings.alert_dict_fill_percent,
            checkpoint_growth_percent=settings.alert_checkpoint_growth_percent,
            leak_horizon_hours=settings.alert_leak_horizon_hours,
            leak_min_mib_per_hour=settings.alert_leak_min_mib_per_hour,
            for_checks=settings.alert_for_checks,
            repeat_minutes=settings.alert_repeat_minutes,
            hysteresis_percent=settings.alert_hysteresis_percent,
        )

    def updated(self, name: str, value: float) -> Thresholds:
        """A copy with one threshold changed, validated as its ALERT_* setting is (same ranges,
        whole numbers where the engine counts); a ThresholdError says what is allowed."""
        if name not in THRESHOLD_SETTINGS:
            raise ThresholdError(f"Unknown threshold '{name}': choose one of {', '.join(THRESHOLD_SETTINGS)}.")
        spec = SETTING_SPECS[THRESHOLD_SETTINGS[name]]
        try:
            parsed = spec.parse(value)
        except ValueError as exc:
            raise ThresholdError(f"{name} = {value:g} is not allowed ({exc}): {spec.allowed}.") from None
        candidate = replace(self, **{name: parsed})
        bounded = {setting: getattr(candidate, threshold) for threshold, setting in THRESHOLD_SETTINGS.items()}
        conflict = hysteresis_conflict(candidate.hysteresis_percent, bounded)
        if conflict:
            raise ThresholdError(f"{name} = {value:g} is not allowed: {conflict}.")
        return candidate


# Each runtime threshold is the ALERT_* setting of the same name: one source of ranges.
THRESHOLD_SETTINGS = {f.name: f"alert_{f.name}" for f in fields(Thresholds)}
THRESHOLD_NAMES = tuple(THRESHOLD_SETTINGS)


@dataclass(frozen=True)
class Condition:
    """One rule's reading of one subject in one sample."""

    rule: Rule
    subject: str
    value: float
    threshold: float
    active: bool
    clear: bool
    detail: str
    for_checks: int | None = None  # None: the thresholds' for_checks


@dataclass(frozen=True)
class AlertTransition:
    kind: Transition
    rule: Rule
    subject: str
    value: float
    threshold: float
    detail: str
    at: datetime
    since: datetime

    @property
    def title(self) -> str:
        return RULE_TITLES[self.rule]

    @property
    def hint(self) -> str:
        return RULE_HINTS[self.rule]


@dataclass(frozen=True)
class ActiveAlert:
    rule: Rule
    subject: str
    value: float
    threshold: float
    detail: str
    since: datetime
    last_notified: datetime


# ---------------------------------------------------------------- rules


def _band(value: float, threshold: float, hysteresis: float) -> tuple[bool, bool]:
    return value > threshold, value < threshold - hysteresis


def memory_conditions(sample: MemorySample, t: Thresholds) -> list[Condition]:
    value = sample.percent_of_limit
    active, clear = _band(value, t.memory_percent, t.hysteresis_percent)
    detail = (
        f"RSS {format_bytes(sample.rss)} is {value:.1f} % of the {format_bytes(sample.limit)} limit "
        f"({sample.limit_source})"
    )
    return [Condition(Rule.MEMORY, "process", value, t.memory_percent, active, clear, detail)]


def pool_conditions(sample: MemorySample, previous: MemorySample | None, t: Thresholds) -> list[Condition]:
    pool = sample.pool
    if pool is None:
        return []
    out = []
    value = pool.overflow_percent
    if value is not None:
        active, clear = _band(value, t.pool_overflow_percent, t.hysteresis_percent)
        detail = (
            f"{pool.overflow} of {pool.max_overflow} overflow connections in use "
            f"({pool.checked_out} checked out, pool size {pool.pool_size})"
        )
        out.append(Condition(Rule.POOL_OVERFLOW, "pool", value, t.pool_overflow_percent, active, clear, detail))
    before = previous.pool.timeouts if previous is not None and previous.pool is not None else pool.timeouts
    new = pool.timeouts - before
    out.append(
        Condition(
            Rule.POOL_TIMEOUT,
            "pool",
            float(new),
            0.0,
            new > 0,
            new <= 0,
            f"{new} checkout timeout(s) since the last check ({pool.timeouts} in all)",
            for_checks=1,  # a timeout already failed a request: no hold time
        )
    )
    return out


def structure_conditions(sample: MemorySample, t: Thresholds) -> list[Condition]:
    out = []
    for s in sample.structures:
        fill = s.fill_percent
        if fill is None:
            continue
        active, clear = _band(fill, t.dict_fill_percent, t.hysteresis_percent)
        detail = f"{s.name} holds {s.size:,} of {s.limit:,} entries ({fill:.0f} %)"
        out.append(Condition(Rule.STRUCTURE_FILL, s.name, fill, t.dict_fill_percent, active, clear, detail))
    return out


def growing_text(growing: Sequence[TypeGrowth]) -> str:
    """`; growing: Message +600, Member +300, User +300` (empty without type counts)."""
    return "; growing: " + ", ".join(g.short() for g in growing) if growing else ""


def growth_conditions(
    growth_percent: float | None, t: Thresholds, growing: Sequence[TypeGrowth] = ()
) -> list[Condition]:
    if growth_percent is None:
        return []
    active, clear = _band(growth_percent, t.checkpoint_growth_percent, t.hysteresis_percent)
    detail = f"RSS grew {growth_percent:+.1f} % between the last two automatic checkpoints{growing_text(growing)}"
    return [
        Condition(
            Rule.CHECKPOINT_GROWTH,
            "checkpoints",
            growth_percent,
            t.checkpoint_growth_percent,
            active,
            clear,
            detail,
            for_checks=1,  # one comparison already spans a whole checkpoint interval
        )
    ]


def leak_conditions(trend: Trend, t: Thresholds, growing: Sequence[TypeGrowth] = ()) -> list[Condition]:
    if trend.slope_mib_per_hour is None:
        return []
    slope, eta = trend.slope_mib_per_hour, trend.seconds_to_threshold
    horizon = t.leak_horizon_hours * 3600
    active = slope >= t.leak_min_mib_per_hour and eta is not None and eta <= horizon
    # Hysteresis: resolve only once the slope is clearly below the minimum or the threshold is
    # well beyond the horizon.
    clear = slope < t.leak_min_mib_per_hour * 0.5 or eta is None or eta > horizon * 1.5
    reach = f"reaches {t.memory_percent:g} % of the limit in {format_duration(eta)}" if eta is not None else ""
    detail = f"RSS rising {slope:.1f} MiB/h over {format_duration(trend.span_s)}; {reach}".rstrip("; ")
    detail += growing_text(growing)
    return [Condition(Rule.LEAK_TREND, "process", slope, t.leak_min_mib_per_hour, active, clear, detail)]


def evaluate_rules(
    sample: MemorySample,
    trend: Trend,
    thresholds: Thresholds,
    *,
    previous: MemorySample | None = None,
    checkpoint_growth_percent: float | None = None,
    growing_types: Sequence[TypeGrowth] = (),
) -> list[Condition]:
    """Every rule's conditions for one sample; `growing_types` are named in the growth and
    leak-trend details."""
    return [
        *memory_conditions(sample, thresholds),
        *pool_conditions(sample, previous, thresholds),
        *structure_conditions(sample, thresholds),
        *growth_conditions(checkpoint_growth_percent, thresholds, growing_types),
        *leak_conditions(trend, thresholds, growing_types),
    ]


# ---------------------------------------------------------------- the state machine


class FiringRecord(Protocol):
    """What a stored alert event tells about an alert that was firing (polly.alert_store)."""

    rule: str
    subject: str
    value: float
    threshold: float
    message: str
    at: datetime
    since: datetime | None


@dataclass
class _State:
    held: int = 0
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
            state = self._states.get(key)
            if c.active:
                state = state or self._states.setdefault(key, _State(since=now))
                state.held += 1
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
                if c.clear:
                    del self._states[key]
                    out.append(self._transition(Transition.RESOLVED, c, now, state.since or now))
                # else: inside the hysteresis band, still firing, no repeat while below threshold
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

    def active(self) -> list[ActiveAlert]:
        return [
            ActiveAlert(
                k[0],
                k[1],
                s.condition.value,
                s.condition.threshold,
                s.condition.detail,
                s.since,
                s.last_notified,
            )
            for k, s in self._states.items()
            if s.firing and s.condition is not None and s.since and s.last_notified
        ]

    def pending(self) -> dict[tuple[Rule, str], int]:
        """Conditions holding but not yet firing, with how many checks they have held."""
        return {k: s.held for k, s in self._states.items() if not s.firing}

    def restore(self, firing: Iterable[FiringRecord]) -> None:
        """Take back alerts that were firing before a restart: they repeat and resolve as if the
        bot had never stopped, and do not fire again as new."""
        for record in firing:
            rule = Rule(record.rule)
            condition = Condition(rule, record.subject, record.value, record.threshold, True, False, record.message)
            since = record.since or record.at
            self._states[(rule, record.subject)] = _State(
                held=1_000_000, firing=True, since=since, last_notified=record.at, condition=condition
            )

    def set_threshold(self, name: str, value: float) -> None:
        self.thresholds = self.thresholds.updated(name, value)
