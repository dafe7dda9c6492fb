"""Alert quality: false alerts on a healthy bot's week and how fast real leaks are detected.

The traces and their replay through the real monitor are in `benchmarks.alert_traces`; every
setting is at its default. A false alert is any alert that fires on a healthy trace (or before
a leak's onset); a leak is detected by the first alert that fires after its onset.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from benchmarks import prometheus_replay
from benchmarks._harness import Result
from benchmarks.alert_traces import (
    Fired,
    Trace,
    healthy_trace,
    replay,
    with_leak,
    with_pressure,
    with_sawtooth_leak,
    with_stepped_leak,
    with_stopping_leak,
    with_throttling,
)
from polly.alerts import Rule, Transition

LIMITS_MIB = (256, 1024, 4096)
LEAK_RATES = (5.0, 30.0, 300.0)
HEALTHY_DAYS = 7
SEEDS = (1, 2)
LEAK_ONSETS_H = (2.5, 6.0, 9.0)  # hours into the second process: soon after the warm-up, and later
# The leak traces' daily cache step comes 14 h after each start, hours away from every onset: a
# step in a leak's first half hour hides it from the short window while the step is in it
# (measured: 45 min instead of 17-27 min for 30 MiB/h toward 1 GiB), said in the README.
LEAK_TRACE_STEP_AFTER_H = 14.0
# The budgets: (rate, limit) -> minutes.
DETECTION_BUDGET_MIN = {(30.0, 1024): 30, (5.0, 1024): 180}


def _run(trace: Trace) -> list[Fired]:
    logging.disable(logging.WARNING)  # every replayed alert would be logged
    try:
        with tempfile.TemporaryDirectory(prefix="polly-alert-quality-") as folder:
            return asyncio.run(replay(trace, Path(folder)))
    finally:
        logging.disable(logging.NOTSET)


def _fired(transitions: list[Fired]) -> list[Fired]:
    return [f for f in transitions if f.transition.kind == Transition.FIRED]


def _limit_name(limit_mib: int) -> str:
    return f"{limit_mib // 1024} GiB" if limit_mib >= 1024 else f"{limit_mib} MiB"


def alert_quality() -> list[Result]:
    results = []
    for limit in LIMITS_MIB:
        false = []
        checks = 0
        for seed in SEEDS:
            trace = healthy_trace(limit, HEALTHY_DAYS, seed=seed * 1000 + limit)
            checks += len(trace.rss_mib)
            false += _fired(_run(trace))
        named = ", ".join(sorted({f.transition.rule.value for f in false})) or "none"
        results.append(
            Result(
                f"false alerts, healthy bot, {len(SEEDS)} traces of {HEALTHY_DAYS} days, limit {_limit_name(limit)}",
                len(false),
                0,
                "alerts",
                "0",
                not false,
                None,
                f"{checks:,} checks with warm-ups, saw-tooth, cache steps, daily restarts, noise; fired: {named}",
            )
        )
    for limit in LIMITS_MIB:
        base = healthy_trace(limit, 2.5, seed=7 + limit, step_after_h=LEAK_TRACE_STEP_AFTER_H)
        for rate in LEAK_RATES:
            delays, early = [], 0
            for onset_h in LEAK_ONSETS_H:
                trace = with_leak(base, rate, onset_h)
                fired = _fired(_run(trace))
                assert trace.leak_onset is not None
                early += sum(f.minute < trace.leak_onset for f in fired)
                after = [f.minute - trace.leak_onset for f in fired if f.minute >= trace.leak_onset]
                delays.append(after[0] if after else None)
            budget = DETECTION_BUDGET_MIN.get((rate, limit))
            detected = [d for d in delays if d is not None]
            worst = max(detected) if len(detected) == len(delays) else None
            passed = early == 0 and (budget is None or (worst is not None and worst <= budget))
            results.append(
                Result(
                    f"leak {rate:g} MiB/h toward {_limit_name(limit)}: detected after",
                    float(worst) if worst is not None else float("nan"),
                    0,
                    "min",
                    f"≤ {budget} min" if budget is not None else "reported",
                    passed,
                    None,
                    f"onsets {', '.join(f'{h:g} h' for h in LEAK_ONSETS_H)} after a start: "
                    + ", ".join("not within 6 h" if d is None else f"{d} min" for d in delays)
                    + (f"; {early} alert(s) before the onset" if early else ""),
                )
            )
    return results + from_the_start() + flapping() + container_signals() + prometheus_rules()


FROM_START_RATES = (30.0, 60.0)
FROM_START_BUDGET_MIN = 45  # at 1 GiB (issue 25); the others are reported


def from_the_start() -> list[Result]:
    """Leaks present from the first minute of a process, under its warm-up: found within the grace."""
    results = []
    for limit in LIMITS_MIB:
        base = healthy_trace(limit, 2.5, seed=7 + limit, step_after_h=LEAK_TRACE_STEP_AFTER_H)
        for rate in FROM_START_RATES:
            trace = with_leak(base, rate, 0.0)
            assert trace.leak_onset is not None
            fired = [f for f in _fired(_run(trace)) if f.transition.rule is Rule.LEAK_TREND]
            early = sum(trace.leak_onset - 60 <= f.minute < trace.leak_onset for f in fired)
            after = [f.minute - trace.leak_onset for f in fired if f.minute >= trace.leak_onset]
            found = after[0] if after else None
            budget = FROM_START_BUDGET_MIN if limit == 1024 else None
            results.append(
                Result(
                    f"leak {rate:g} MiB/h from the first minute toward {_limit_name(limit)}: detected after",
                    float(found) if found is not None else float("nan"),
                    0,
                    "min",
                    f"≤ {budget} min" if budget else "reported",
                    early == 0 and (budget is None or (found is not None and found <= budget)),
                    None,
                    "under the warm-up (65 % -> 100 %, time constant 12 min)"
                    + ("" if found is not None else "; not within 6 h")
                    + (f"; {early} alert(s) before the start" if early else ""),
                )
            )
    return results


# Leaks that move in steps or under a saw-tooth: (name, trace maker). Found once, never flapping.
UNEVEN_LEAKS = (
    ("stepped leak: +10 MiB every 20 min", lambda t, h: with_stepped_leak(t, 10.0, 20, h)),
    ("stepped leak: +25 MiB every 45 min", lambda t, h: with_stepped_leak(t, 25.0, 45, h)),
    (
        "saw-tooth leak: net 30 MiB/h, half given back every 30 min",
        lambda t, h: with_sawtooth_leak(t, 30.0, 30, 0.5, h),
    ),
    ("leak of 30 MiB/h that stops after 90 min", lambda t, h: with_stopping_leak(t, 30.0, 90, h)),
)


def _flaps(fired: list[Fired], repeat_min: float) -> int:
    """Fire → resolve → fire of the leak rule within the repeat window: one alert said three times."""
    leak = [f for f in fired if f.transition.rule is Rule.LEAK_TREND]
    flaps, resolved_at = 0, None
    for f in leak:
        if f.transition.kind is Transition.RESOLVED:
            resolved_at = f.minute
        elif f.transition.kind is Transition.FIRED and resolved_at is not None:
            flaps += f.minute - resolved_at <= repeat_min
            resolved_at = None
    return flaps


def flapping() -> list[Result]:
    """Uneven leaks toward 1 GiB: how many times the leak rule flaps (budget 0) and when it fires."""
    results = []
    base = healthy_trace(1024, 2.5, seed=7 + 1024, step_after_h=LEAK_TRACE_STEP_AFTER_H)
    for name, make in UNEVEN_LEAKS:
        flaps, delays, resolved = 0, [], []
        for onset_h in LEAK_ONSETS_H:
            trace = make(base, onset_h)
            transitions = _run(trace)
            flaps += _flaps(transitions, 60.0)
            assert trace.leak_onset is not None
            after = [f.minute - trace.leak_onset for f in _fired(transitions) if f.minute >= trace.leak_onset]
            delays.append(after[0] if after else None)
            resolved += [
                f.minute - trace.leak_onset
                for f in transitions
                if f.transition.rule is Rule.LEAK_TREND and f.transition.kind is Transition.RESOLVED
            ]
        results.append(
            Result(
                f"{name} toward 1 GiB: flaps (fire, resolve, fire within an hour)",
                flaps,
                0,
                "flaps",
                "0",
                flaps == 0,
                None,
                "found after "
                + ", ".join("not within 6 h" if d is None else f"{d} min" for d in delays)
                + (f"; resolved {', '.join(f'{m} min' for m in resolved)} after the onset" if resolved else ""),
            )
        )
    return results


# The container's incidents: (name, how to add it, rule, budget in minutes after the onset)
CONTAINER_INCIDENTS = (
    ("memory pressure 20 % (PSI some avg60) for 30 min", lambda t, at: with_pressure(t, 20.0, at), Rule.PRESSURE, 5),
    ("memory.high hit 50 times a minute for 20 min", lambda t, at: with_throttling(t, 50, at), Rule.THROTTLED, 2),
)


def container_signals() -> list[Result]:
    """Pressure and throttling on a 1 GiB bot: found within minutes, nothing before the onset (the
    healthy traces above carry the healthy bursts of both)."""
    results = []
    base = healthy_trace(1024, 2.5, seed=7 + 1024, step_after_h=LEAK_TRACE_STEP_AFTER_H)
    second = sorted(base.restarts)[1]
    for name, add, rule, budget in CONTAINER_INCIDENTS:
        delays, early = [], 0
        for onset_h in LEAK_ONSETS_H:
            onset = second + int(onset_h * 60)
            fired = [f for f in _fired(_run(add(base, onset))) if f.transition.rule is rule]
            early += sum(f.minute < onset for f in fired)
            after = [f.minute - onset for f in fired if f.minute >= onset]
            delays.append(after[0] if after else None)
        worst = max(d for d in delays if d is not None) if all(d is not None for d in delays) else None
        results.append(
            Result(
                f"{name}: detected after",
                float(worst) if worst is not None else float("nan"),
                0,
                "min",
                f"≤ {budget} min",
                early == 0 and worst is not None and worst <= budget,
                None,
                f"onsets {', '.join(f'{h:g} h' for h in LEAK_ONSETS_H)} after a start: "
                + ", ".join("not found" if d is None else f"{d} min" for d in delays)
                + (f"; {early} alert(s) before the onset" if early else ""),
            )
        )
    return results


def prometheus_rules() -> list[Result]:
    """The shipped Prometheus rules on the same traces (first seed, every onset), via promtool."""
    if not prometheus_replay.available():
        return [Result("Prometheus rules on the traces", float("nan"), 0, "", "reported", True, None, "no promtool")]
    results = []
    for limit in LIMITS_MIB:
        trace = healthy_trace(limit, HEALTHY_DAYS, seed=SEEDS[0] * 1000 + limit)
        seen = prometheus_replay.alerts_seen(trace)
        named = ", ".join(sorted({name for _, name in seen})) or "none"
        results.append(
            Result(
                f"Prometheus rules: false alerts, healthy bot, {HEALTHY_DAYS} days, limit {_limit_name(limit)}",
                len(seen),
                0,
                "alerts",
                "0",
                not seen,
                None,
                f"promtool test rules, checked every 10 min; fired: {named}",
            )
        )
    base = healthy_trace(1024, 2.5, seed=7 + 1024, step_after_h=LEAK_TRACE_STEP_AFTER_H)
    for rate in LEAK_RATES:
        delays = []
        for onset_h in LEAK_ONSETS_H:
            trace = with_leak(base, rate, onset_h)
            assert trace.leak_onset is not None
            after = [
                m - trace.leak_onset for m, _ in prometheus_replay.alerts_seen(trace, step=5) if m >= trace.leak_onset
            ]
            delays.append(after[0] if after else None)
        worst = max(d for d in delays if d is not None) if all(d is not None for d in delays) else float("nan")
        results.append(
            Result(
                f"Prometheus rules: leak {rate:g} MiB/h toward 1 GiB detected after",
                float(worst),
                0,
                "min",
                "reported",
                True,
                None,
                "checked every 5 min; " + ", ".join("not within 6 h" if d is None else f"{d} min" for d in delays),
            )
        )
    return results
