"""The leak rule's evidence on synthetic windows, and replays of RSS traces through the real monitor.

The replays are the alert-quality benchmark's traces (benchmarks/alert_traces.py), shorter: a
healthy bot must raise no alert (the old rule paged after every start), a 30 MiB/h leak toward
1 GiB must be caught within 30 minutes.
"""

from __future__ import annotations

import math
import random

import pytest

from benchmarks.alert_traces import healthy_trace, replay, with_leak
from polly import trend
from polly.alerts import Rule, Transition
from polly.formatting import MIB
from polly.trend import LEAK_MIN_T, leak_evidence

MINUTE = 60.0


def points(values_mib):
    return [(i * MINUTE, int(v * MIB)) for i, v in enumerate(values_mib)]


def noisy(n, base=500.0, sigma=1.0, seed=1):
    rng = random.Random(seed)
    return [base + rng.gauss(0, sigma) for _ in range(n)]


def test_a_steady_rise_is_a_leak():
    values = [v + 30 * i / 60 for i, v in enumerate(noisy(31))]  # 30 MiB/h
    evidence = leak_evidence(points(values), 30 * MINUTE)
    assert evidence.sustained(2.0)
    assert evidence.slope_mib_per_hour == pytest.approx(30, rel=0.2)


def test_a_step_is_not_a_leak():
    values = [v + (40 if i >= 15 else 0) * min(1, max(0, (i - 13) / 5)) for i, v in enumerate(noisy(31))]
    evidence = leak_evidence(points(values), 30 * MINUTE)
    assert evidence.slope_mib_per_hour > 2 and not evidence.steady and not evidence.sustained(2.0)


def test_a_short_spike_is_not_a_leak():
    values = noisy(31)
    values[27:30] = [v + 25 for v in values[27:30]]  # three samples, at the window's end
    assert not leak_evidence(points(values), 30 * MINUTE).sustained(2.0)


def test_noise_alone_is_not_a_leak():
    for seed in range(20):
        assert not leak_evidence(points(noisy(121, sigma=3.0, seed=seed)), 120 * MINUTE).sustained(2.0)


def test_a_window_is_judged_only_once_covered_and_after_the_grace():
    rising = points([500 + i for i in range(31)])
    assert leak_evidence(rising[:20], 30 * MINUTE).slope_mib_per_hour is None  # 19 of 30 min
    assert leak_evidence(rising, 30 * MINUTE).sustained(2.0)
    assert leak_evidence(rising, 30 * MINUTE, not_before=10 * MINUTE).slope_mib_per_hour is None


def test_a_big_drop_starts_the_window_anew():
    values = [600 + i for i in range(20)] + [400 + i for i in range(15)]  # a restart-like fall
    evidence = leak_evidence(points(values), 30 * MINUTE)
    assert evidence.slope_mib_per_hour is None  # 14 min since the drop: not covered
    assert math.isinf(leak_evidence(points([500] * 31), 30 * MINUTE).t_value) is False


def test_with_the_rule_s_rate_steadiness_is_judged_only_where_it_can_change_the_decision(monkeypatch):
    """Given the rule's rate, a window rising too slowly (or too noisily) to matter skips the
    step fit; on every kind of window the rule decides as it does with the full evidence."""
    rng = random.Random(7)
    windows = []
    for i in range(300):
        rate = rng.choice([0.0, 0.5, 2.0, 5.0, 30.0])  # MiB/h
        step = rng.choice([0.0, 0.0, 40.0])
        values = [v + rate * j / 60 + (step if j >= 15 else 0) for j, v in enumerate(noisy(31, sigma=1.0, seed=i))]
        windows.append(points(values))
    fits, skipped, fitted = [], 0, 0
    real_fit = trend._best_step_residual
    monkeypatch.setattr(trend, "_best_step_residual", lambda ys: fits.append(1) or real_fit(ys))
    for minimum in (2.0, 5.0, 20.0):
        for window in windows:
            full = leak_evidence(window, 30 * MINUTE)
            fits.clear()
            judged = leak_evidence(window, 30 * MINUTE, min_mib_per_hour=minimum)
            decided = (judged.sustained(minimum), judged.settled(minimum))
            assert decided == (full.sustained(minimum), full.settled(minimum))
            assert (judged.slope_mib_per_hour, judged.t_value) == (full.slope_mib_per_hour, full.t_value)
            slope = judged.slope_mib_per_hour or 0.0
            if slope < minimum / 2 or judged.t_value < LEAK_MIN_T / 2:
                assert fits == [] and not judged.steady
                skipped += 1
            elif slope > 0:
                assert fits == [1] and judged.steady == full.steady
                fitted += 1
    assert skipped > 100 and fitted > 100  # both kinds of window were seen
    flat = leak_evidence(points(noisy(31)), 30 * MINUTE, min_mib_per_hour=2.0)
    assert flat.settled(2.0) and not flat.sustained(2.0)


@pytest.mark.parametrize("limit_mib", [256, 1024])
async def test_a_healthy_bot_raises_no_alert_over_two_days(tmp_path, limit_mib):
    """Warm-ups after two starts, saw-tooth, a cache step a day, spikes, noise: nothing fires
    (the old rule fired a leak alert minutes after every start)."""
    fired = await replay(healthy_trace(limit_mib, 2, seed=limit_mib), tmp_path)
    assert [(f.minute, f.transition.rule, f.transition.detail) for f in fired] == []


async def test_a_30_mib_per_hour_leak_toward_1_gib_is_caught_within_30_minutes(tmp_path):
    trace = with_leak(healthy_trace(1024, 2.5, seed=11, step_after_h=14), 30.0, hours_after_start=6)
    fired = [f for f in await replay(trace, tmp_path) if f.transition.kind == Transition.FIRED]
    assert trace.leak_onset is not None
    assert [f for f in fired if f.minute < trace.leak_onset] == []
    first = fired[0]
    assert first.transition.rule == Rule.LEAK_TREND
    assert 0 <= first.minute - trace.leak_onset <= 30
    assert "MiB/h" in first.transition.detail


async def test_a_leak_that_stops_resolves_once_and_does_not_fire_again(tmp_path):
    """The alert-quality trace that flapped: after the resolve, the early-leak fit (meant for the
    warm-up) looked back over the whole run, found the old rise and fired again 5 minutes later."""
    from benchmarks.alert_traces import with_stopping_leak
    from benchmarks.bench_alerts import LEAK_TRACE_STEP_AFTER_H

    base = healthy_trace(1024, 2.5, seed=7 + 1024, step_after_h=LEAK_TRACE_STEP_AFTER_H)
    trace = with_stopping_leak(base, 30.0, 90, 2.5)
    leak = [f.transition.kind for f in await replay(trace, tmp_path) if f.transition.rule is Rule.LEAK_TREND]
    assert [k for k in leak if k is not Transition.REPEATED] == [Transition.FIRED, Transition.RESOLVED]
