"""Alert rules on the container's signals (polly.container): throttling at memory.high/memory.max
and memory pressure. Pure functions of a sample, as the rules in polly.alerts are."""

from __future__ import annotations

from polly.alerts import Condition, Rule, Thresholds
from polly.container import ContainerMark
from polly.formatting import format_bytes, format_duration
from polly.samples import MemorySample


def _lag(sample: MemorySample) -> str:
    return f"; event-loop lag {sample.loop_lag_ms:.0f} ms" if sample.loop_lag_ms is not None else ""


def throttle_conditions(sample: MemorySample, window_start: ContainerMark | None, t: Thresholds) -> list[Condition]:
    """The container throttled the process: memory.high or memory.max hit (v1: the limit's failcnt)
    at least ALERT_THROTTLED_EVENTS times since `window_start` (the sample ALERT_FOR_CHECKS checks
    ago). It fires at once (the bot is already slowed) and resolves once a whole window had none."""
    now, before = sample.container, window_start.container if window_start is not None else None
    if now is None or before is None or now.throttle_events is None or before.throttle_events is None:
        return []
    events = max(0, now.throttle_events - before.throttle_events)  # a recreated cgroup starts again at 0
    hits = ", ".join(
        f"memory.{name} {max(0, now.events[name] - before.events.get(name, now.events[name])):,} time(s)"
        for name in ("high", "max")
        if name in now.events
    )
    ceilings = [
        f"memory.{kind} {format_bytes(value)}"
        for kind, value in (("max", now.limit_max), (now.high_kind, now.limit_high))
        if value is not None
    ]
    span = format_duration((sample.at - window_start.at).total_seconds()) if window_start is not None else "?"
    detail = (
        f"The container's ceiling was hit {events:,} time(s) in the last {span} ({hits}"
        + (f"; {', '.join(ceilings)}" if ceilings else "")
        + f"){_lag(sample)}"
    )
    return [
        Condition(
            Rule.THROTTLED,
            "process",
            float(events),
            float(t.throttled_events),
            events >= t.throttled_events,
            events == 0,
            detail,
            for_checks=1,
        )
    ]


def pressure_conditions(sample: MemorySample, t: Thresholds) -> list[Condition]:
    """Memory pressure: the share of the last minute in which some task waited for memory (PSI
    `some` avg60) at or above ALERT_MEMORY_PRESSURE_PERCENT, for the hold."""
    pressure = sample.container.pressure if sample.container is not None else None
    if pressure is None:
        return []
    value = pressure.some_avg60
    where = "the container's memory.pressure" if pressure.source == "cgroup" else "the host's /proc/pressure/memory"
    full = f", all tasks {pressure.full_avg60:.1f} %" if pressure.full_avg60 is not None else ""
    detail = f"Some task waited for memory {value:.1f} % of the last minute{full} ({where}){_lag(sample)}"
    active, clear = value >= t.memory_pressure_percent, value < t.memory_pressure_percent - t.hysteresis_percent
    return [Condition(Rule.PRESSURE, "process", value, t.memory_pressure_percent, active, clear, detail)]
