"""Alert rules: pure functions of a sample, turning it into conditions (rule, subject, value,
threshold, active, clear). The state machine that turns conditions into fired, repeated and
resolved alerts is `polly.alert_engine`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from polly.config import SETTING_SPECS, Settings
from polly.formatting import MIB, format_bytes, format_duration
from polly.heap_types import TypeGrowth
from polly.records import field_names, record, replace
from polly.samples import MemorySample
from polly.settings_spec import hysteresis_conflict
from polly.trend import LeakWindows

if TYPE_CHECKING:
    from polly.rss_breakdown import PartChange


class Rule(enum.StrEnum):
    MEMORY = "memory_percent"
    POOL_OVERFLOW = "pool_overflow"
    POOL_TIMEOUT = "pool_timeouts"
    STRUCTURE_FILL = "structure_fill"
    CHECKPOINT_GROWTH = "checkpoint_growth"
    LEAK_TREND = "leak_trend"
    INSTANCE_SILENT = "instance_silent"  # a fleet rule: evaluated by one process (polly/fleet.py)
    THROTTLED = "memory_throttled"
    PRESSURE = "memory_pressure"
    PREVIOUS_RUN = "previous_run"  # a post-mortem, reported once at a start (polly/post_mortem.py)
    BOT_OBJECTS = "bot_objects_growing"  # tasks, views, sessions, survivors (polly/bot_rules.py)


RULE_TITLES = {
    Rule.MEMORY: "Memory above threshold",
    Rule.POOL_OVERFLOW: "Database pool in overflow",
    Rule.POOL_TIMEOUT: "Database pool checkout timeouts",
    Rule.STRUCTURE_FILL: "Tracked structure filling up",
    Rule.CHECKPOINT_GROWTH: "Memory grew between checkpoints",
    Rule.LEAK_TREND: "Memory leak trend",
    Rule.INSTANCE_SILENT: "Instance silent",
    Rule.THROTTLED: "Memory throttled by the container",
    Rule.PRESSURE: "Memory pressure",
    Rule.PREVIOUS_RUN: "The previous run did not stop cleanly",
    Rule.BOT_OBJECTS: "Bot objects growing",
}

RULE_HINTS = {
    Rule.MEMORY: "Run /mem cleanup, then /mem checkpoint to see what grew.",
    Rule.POOL_OVERFLOW: "Raise DB_POOL_SIZE, or look for sessions held open too long.",
    Rule.POOL_TIMEOUT: "Raise DB_POOL_SIZE / DB_MAX_OVERFLOW, or look for sessions held open too long.",
    Rule.STRUCTURE_FILL: "Run /mem cleanup; if it refills, raise its limit or find who writes to it.",
    Rule.CHECKPOINT_GROWTH: "Compare checkpoints with /mem checkpoint (trace:true shows allocation sites).",
    Rule.LEAK_TREND: "Take /mem checkpoint trace:true now and again later to find the growing allocations.",
    Rule.INSTANCE_SILENT: "Check that process and its host (its log, its supervisor); /mem fleet shows the rest.",
    Rule.THROTTLED: (
        "The container's ceiling is near: raise memory.high/memory.max (or the container's memory limit), or find "
        "what grew with /mem checkpoint; the event-loop lag shows what throttling costs the bot."
    ),
    Rule.PRESSURE: (
        "Tasks wait for memory: the host or container is short of it. Check /mem stats (working set, other "
        "processes), free memory or raise the limit before the OOM killer acts."
    ),
    Rule.PREVIOUS_RUN: "See the last figures and the chart; /mem checkpoint shows what grows now.",
    Rule.BOT_OBJECTS: (
        "/mem tasks names where the tasks wait and who holds a survivor. Give tasks an end (a timeout on "
        "wait_for), views a timeout (or stop them), open one HTTP session per bot and close it, and remove "
        "listeners in cog_unload."
    ),
}


class ThresholdError(ValueError):
    """A runtime threshold change that is not allowed; the message says what is."""


class Transition(enum.StrEnum):
    FIRED = "fired"
    REPEATED = "repeated"
    RESOLVED = "resolved"
    REPORTED = "reported"  # a one-off report (a post-mortem): never firing, never resolved


@record
class Thresholds:
    """The alert thresholds in force; changeable at runtime with `updated()`. No defaults here:
    they are the ALERT_* settings' (`polly.config.Settings`, the single source), see `default()`."""

    memory_percent: float
    pool_overflow_percent: float
    dict_fill_percent: float
    checkpoint_growth_percent: float
    leak_horizon_hours: float
    leak_slow_horizon_hours: float
    leak_min_mib_per_hour: float
    for_checks: int
    repeat_minutes: float
    hysteresis_percent: float
    throttled_events: int
    memory_pressure_percent: float
    bot_growth_minutes: float
    bot_growth_objects: int

    @classmethod
    def default(cls) -> Thresholds:
        """The thresholds of the ALERT_* settings' defaults."""
        return cls.from_settings(Settings())

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            memory_percent=settings.alert_memory_percent,
            pool_overflow_percent=settings.alert_pool_overflow_percent,
            dict_fill_percent=settings.alert_dict_fill_percent,
            checkpoint_growth_percent=settings.alert_checkpoint_growth_percent,
            leak_horizon_hours=settings.alert_leak_horizon_hours,
            leak_slow_horizon_hours=settings.alert_leak_slow_horizon_hours,
            leak_min_mib_per_hour=settings.alert_leak_min_mib_per_hour,
            for_checks=settings.alert_for_checks,
            repeat_minutes=settings.alert_repeat_minutes,
            hysteresis_percent=settings.alert_hysteresis_percent,
            throttled_events=settings.alert_throttled_events,
            memory_pressure_percent=settings.alert_memory_pressure_percent,
            bot_growth_minutes=settings.alert_bot_growth_minutes,
            bot_growth_objects=settings.alert_bot_growth_objects,
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
THRESHOLD_SETTINGS = {name: f"alert_{name}" for name in field_names(Thresholds)}
THRESHOLD_NAMES = tuple(THRESHOLD_SETTINGS)


@record(hot=True)  # ~20 a tick
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
    # False: the rule's input failed this tick (a structure that cannot report its size). The engine
    # then keeps the subject's state as it was: not evaluated is not gone, and not cleared.
    evaluated: bool = True
    clear_for_checks: int = 1  # consecutive clear checks before a firing alert resolves


@record
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


@record
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
        if s.failing:
            why = f"{s.name} cannot report its size ({s.failing})"
            out.append(
                Condition(Rule.STRUCTURE_FILL, s.name, math.nan, t.dict_fill_percent, False, False, why, None, False)
            )
            continue
        fill = s.fill_percent
        if fill is None:
            continue
        active, clear = _band(fill, t.dict_fill_percent, t.hysteresis_percent)
        detail = f"{s.name} holds {s.size:,} of {s.limit:,} entries ({fill:.0f} %)"
        out.append(Condition(Rule.STRUCTURE_FILL, s.name, fill, t.dict_fill_percent, active, clear, detail))
    return out


def growing_text(growing: Sequence[TypeGrowth], part: PartChange | None = None) -> str:
    """`; grew: Python objects +45.2 MiB; growing: Message +600, Member +300, User +300` (the part
    of RSS that grew between the checkpoints, then the types; each left out when unknown)."""
    grew = f"; grew: {part.label} {format_bytes(part.change, signed=True)}" if part is not None else ""
    return grew + ("; growing: " + ", ".join(g.short() for g in growing) if growing else "")


def growth_conditions(
    growth_percent: float | None, t: Thresholds, growing: Sequence[TypeGrowth] = (), part: PartChange | None = None
) -> list[Condition]:
    if growth_percent is None:
        return []
    active, clear = _band(growth_percent, t.checkpoint_growth_percent, t.hysteresis_percent)
    detail = f"RSS grew {growth_percent:+.1f} % between the last two automatic checkpoints{growing_text(growing, part)}"
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


def hours_to_threshold(sample: MemorySample, threshold_percent: float, slope_mib_per_hour: float) -> float:
    """When RSS reaches `threshold_percent` of the limit at this slope: the leak alert's ETA, and the
    projection of the chart attached to it (one computation, so both say the same)."""
    headroom_mib = (sample.limit * threshold_percent / 100 - sample.rss) / MIB
    return max(0.0, headroom_mib / slope_mib_per_hour) if slope_mib_per_hour > 0 else math.inf


LEAK_FOR_CHECKS = 5  # a cache step can look like a leak for a few checks (alert-quality benchmark)


def leak_conditions(
    sample: MemorySample,
    leak: LeakWindows | None,
    t: Thresholds,
    growing: Sequence[TypeGrowth] = (),
    part: PartChange | None = None,
) -> list[Condition]:
    """A leak: RSS rising steadily, far above the noise, toward the memory threshold: over the
    short window within ALERT_LEAK_HORIZON_HOURS (a fast leak), over the long one within
    ALERT_LEAK_SLOW_HORIZON_HOURS (a slow one). It resolves once both windows have settled."""
    windows = ((leak.fast, t.leak_horizon_hours), (leak.slow, t.leak_slow_horizon_hours)) if leak else ()
    judged = [(w, hours) for w, hours in windows if w.slope_mib_per_hour is not None]
    if not judged:
        return []
    headroom_mib = (sample.limit * t.memory_percent / 100 - sample.rss) / MIB

    def eta_h(slope: float) -> float:
        return hours_to_threshold(sample, t.memory_percent, slope)

    minimum = t.leak_min_mib_per_hour
    firing = [w for w, hours in judged if w.sustained(minimum) and eta_h(w.slope_mib_per_hour or 0) <= hours]
    shown = firing[0] if firing else max((w for w, _ in judged), key=lambda w: w.slope_mib_per_hour or 0.0)
    slope = shown.slope_mib_per_hour or 0.0
    eta = eta_h(slope)
    reach = f"; reaches {t.memory_percent:g} % of the limit in {format_duration(eta * 3600)}" if eta < math.inf else ""
    if headroom_mib <= 0:
        reach = f"; already above {t.memory_percent:g} % of the limit"
    detail = f"RSS rising {slope:.1f} MiB/h over the last {format_duration(shown.window_s)}{reach}"
    # Resolved only once the level has stopped rising: the long window over the samples since it
    # fired (which a stepped or saw-tooth leak keeps rising) judged and settled too, for the hold.
    # A resolve never reports a rising trend.
    since = leak.since_fired if leak is not None else None
    clear = all(w.settled(minimum) for w, _ in judged)
    clear = clear and since is not None and since.slope_mib_per_hour is not None and since.settled(minimum)
    if clear and leak is not None:
        detail = (
            f"RSS has stopped rising (at {format_bytes(sample.rss)}): no steady rise over the last "
            f"{format_duration(leak.fast.window_s)}, nor since the alert fired"
        )
    hold = max(t.for_checks, LEAK_FOR_CHECKS)
    return [
        Condition(
            Rule.LEAK_TREND,
            "process",
            slope,
            minimum,
            bool(firing),
            clear,
            detail + growing_text(growing, part),
            hold,
            clear_for_checks=hold,
        )
    ]
