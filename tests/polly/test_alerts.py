"""Alert rules and the state machine: pure functions of a sample and an injected now."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from polly.alert_engine import AlertEngine
from polly.alert_rules import evaluate_rules
from polly.alerts import LEAK_FOR_CHECKS, Rule, Thresholds, Transition
from polly.enhanced_database import PoolStatus
from polly.formatting import MIB
from polly.memory_optimizer import MemorySample
from polly.memory_utils import StructureStat
from polly.trend import LeakEvidence, LeakWindows

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LIMIT = 1000 * MIB


def make_sample(rss_mib: float = 100, structures=(), pool=None) -> MemorySample:
    return MemorySample(
        at=T0,
        rss=int(rss_mib * MIB),
        vms=0,
        uss=None,
        pss=None,
        swap=None,
        peak_rss=None,
        threads=1,
        open_fds=None,
        system_total=LIMIT,
        system_available=LIMIT,
        system_used=0,
        system_percent=0,
        limit=LIMIT,
        limit_source="cgroup v2 memory.max",
        gc_counts=(0, 0, 0),
        gc_collections=(0, 0, 0),
        structures=tuple(structures),
        pool=pool,
    )


FLAT = None  # no leak evidence yet
T = replace(Thresholds.default(), memory_percent=80, for_checks=3, repeat_minutes=60, hysteresis_percent=5)


def run(engine: AlertEngine, sample: MemorySample, minute: float, **kw):
    conditions = evaluate_rules(sample, kw.pop("trend", FLAT), engine.thresholds, **kw)
    return engine.evaluate(conditions, T0 + timedelta(minutes=minute))


def kinds(transitions, rule=Rule.MEMORY):
    return [t.kind for t in transitions if t.rule == rule]


def test_memory_alert_fires_only_after_the_hold_time():
    engine = AlertEngine(T)
    high = make_sample(850)  # 85 % of the limit
    assert kinds(run(engine, high, 0)) == []
    assert kinds(run(engine, high, 1)) == []
    fired = run(engine, high, 2)
    assert kinds(fired) == [Transition.FIRED]
    t = fired[0]
    assert t.value == pytest.approx(85.0) and t.threshold == 80
    assert "85.0 % of the 1000.0 MiB limit (cgroup v2 memory.max)" in t.detail
    assert "/mem cleanup" in t.hint


def test_a_pending_condition_that_breaks_off_starts_over():
    engine = AlertEngine(T)
    run(engine, make_sample(850), 0)
    run(engine, make_sample(850), 1)
    run(engine, make_sample(100), 2)  # below: pending reset
    assert kinds(run(engine, make_sample(850), 3)) == []
    assert kinds(run(engine, make_sample(850), 4)) == []
    assert kinds(run(engine, make_sample(850), 5)) == [Transition.FIRED]


def test_no_duplicate_while_firing_then_repeat_after_the_interval():
    engine = AlertEngine(T)
    for minute in range(3):
        run(engine, make_sample(850), minute)
    for minute in range(3, 62):
        assert kinds(run(engine, make_sample(850), minute)) == []
    assert kinds(run(engine, make_sample(850), 62)) == [Transition.REPEATED]
    assert kinds(run(engine, make_sample(850), 63)) == []


def test_resolves_only_below_threshold_minus_hysteresis():
    engine = AlertEngine(T)
    for minute in range(3):
        run(engine, make_sample(850), minute)
    assert kinds(run(engine, make_sample(780), 3)) == []  # 78 %: inside the band, still firing
    assert len(engine.active()) == 1
    resolved = run(engine, make_sample(740), 4)  # 74 % < 75 %
    assert kinds(resolved) == [Transition.RESOLVED]
    assert resolved[0].since == T0 + timedelta(minutes=2)
    assert engine.active() == []


def test_thresholds_can_change_at_runtime():
    engine = AlertEngine(T)
    engine.set_threshold("memory_percent", 10)
    engine.set_threshold("for_checks", 1)
    assert kinds(run(engine, make_sample(200), 0)) == [Transition.FIRED]
    with pytest.raises(ValueError, match="Unknown threshold"):
        engine.set_threshold("nope", 1)
    with pytest.raises(ValueError, match="at or below 0"):
        engine.set_threshold("memory_percent", 0)


def test_structure_fill_rule_per_structure():
    engine = AlertEngine(replace(T, for_checks=1))
    full = StructureStat("message_fetch_failures", "BoundedDict", 90, 100, 60, True)
    low = StructureStat("other", "dict", 10, 100, None, False)
    unlimited = StructureStat("free", "dict", 10_000, None, None, False)
    out = run(engine, make_sample(structures=[full, low, unlimited]), 0)
    fired = [t for t in out if t.rule == Rule.STRUCTURE_FILL]
    assert [(t.kind, t.subject) for t in fired] == [(Transition.FIRED, "message_fetch_failures")]
    assert "90 of 100 entries (90 %)" in fired[0].detail
    emptied = replace(full, size=10)
    out = run(engine, make_sample(structures=[emptied, low, unlimited]), 1)
    assert [(t.kind, t.subject) for t in out] == [(Transition.RESOLVED, "message_fetch_failures")]


def test_a_structure_that_disappears_resolves():
    engine = AlertEngine(replace(T, for_checks=1))
    full = StructureStat("gone_soon", "dict", 100, 100, None, False)
    run(engine, make_sample(structures=[full]), 0)
    out = run(engine, make_sample(structures=[]), 1)
    assert [(t.kind, t.subject) for t in out] == [(Transition.RESOLVED, "gone_soon")]
    assert "no longer reported" in out[0].detail


def test_a_structure_that_cannot_report_for_a_tick_keeps_its_alert_neither_resolved_nor_refired():
    """Its input failed: the rule was not evaluated, which is not the structure being gone."""
    engine = AlertEngine(replace(T, for_checks=1, repeat_minutes=600))
    full = StructureStat("flaky", "dict", 100, 100, None, False)
    failing = StructureStat("flaky", "dict", 0, None, None, False, failing="RuntimeError: cannot count")
    assert kinds(run(engine, make_sample(structures=[full]), 0), Rule.STRUCTURE_FILL) == [Transition.FIRED]
    for minute in (1, 2):
        assert run(engine, make_sample(structures=[failing]), minute) == []
        assert [a.subject for a in engine.active()] == ["flaky"]
    assert run(engine, make_sample(structures=[full]), 3) == []  # still the same alert: no second FIRED
    assert kinds(run(engine, make_sample(structures=[]), 4), Rule.STRUCTURE_FILL) == [Transition.RESOLVED]


def test_a_pending_condition_whose_input_fails_waits_for_it():
    engine = AlertEngine(replace(T, for_checks=2))
    full = StructureStat("flaky", "dict", 100, 100, None, False)
    failing = StructureStat("flaky", "dict", 0, None, None, False, failing="RuntimeError: cannot count")
    assert run(engine, make_sample(structures=[full]), 0) == []
    assert run(engine, make_sample(structures=[failing]), 1) == []
    assert engine.pending() == {(Rule.STRUCTURE_FILL, "flaky"): 1}  # held, neither counted nor dropped
    assert kinds(run(engine, make_sample(structures=[full]), 2), Rule.STRUCTURE_FILL) == [Transition.FIRED]


def pool(overflow: int, timeouts: int = 0) -> PoolStatus:
    return PoolStatus(
        pool_class="AsyncAdaptedQueuePool",
        sized=True,
        ignored_settings=(),
        checked_out=10 + overflow,
        connects=10,
        checkouts=100,
        checkins=90,
        invalidations=0,
        overflow_checkouts=overflow,
        peak_checked_out=10 + overflow,
        timeouts=timeouts,
        pool_size=10,
        max_overflow=20,
        overflow=overflow,
    )


def test_pool_overflow_rule():
    engine = AlertEngine(replace(T, for_checks=2))
    assert kinds(run(engine, make_sample(pool=pool(12)), 0), Rule.POOL_OVERFLOW) == []
    out = run(engine, make_sample(pool=pool(12)), 1)
    assert kinds(out, Rule.POOL_OVERFLOW) == [Transition.FIRED]
    assert "DB_POOL_SIZE" in next(t for t in out if t.rule == Rule.POOL_OVERFLOW).hint
    assert kinds(run(engine, make_sample(pool=pool(0)), 2), Rule.POOL_OVERFLOW) == [Transition.RESOLVED]


def test_any_new_checkout_timeout_fires_at_once_and_resolves_when_none_follow():
    engine = AlertEngine(T)
    first = make_sample(pool=pool(0, timeouts=0))
    run(engine, first, 0)
    second = make_sample(pool=pool(0, timeouts=2))
    out = run(engine, second, 1, previous=first)
    assert kinds(out, Rule.POOL_TIMEOUT) == [Transition.FIRED]
    assert "2 checkout timeout(s)" in out[-1].detail
    out = run(engine, make_sample(pool=pool(0, timeouts=2)), 2, previous=second)
    assert kinds(out, Rule.POOL_TIMEOUT) == [Transition.RESOLVED]


def test_pool_without_sizing_has_no_overflow_rule():
    conditions = evaluate_rules(
        make_sample(pool=replace(pool(0), sized=False, pool_size=None, max_overflow=None, overflow=None)), FLAT, T
    )
    assert {c.rule for c in conditions} == {Rule.MEMORY, Rule.POOL_TIMEOUT}  # no leak evidence yet


def test_checkpoint_growth_rule():
    engine = AlertEngine(T)
    out = run(engine, make_sample(), 0, checkpoint_growth_percent=35.0)
    assert kinds(out, Rule.CHECKPOINT_GROWTH) == [Transition.FIRED]
    assert "+35.0 %" in out[0].detail
    out = run(engine, make_sample(), 1, checkpoint_growth_percent=2.0)
    assert kinds(out, Rule.CHECKPOINT_GROWTH) == [Transition.RESOLVED]


def windows(
    fast: float | None = None,
    slow: float | None = None,
    *,
    t: float = 20.0,
    steady: bool = True,
    since: float | None = None,
):
    """`since`: the long window's slope over the samples since the alert fired (None: not judged yet)."""
    since_fired = LeakEvidence(7200, since, t, steady) if since is not None else None
    return LeakWindows(LeakEvidence(1800, fast, t, steady), LeakEvidence(7200, slow, t, steady), since_fired)


def held(engine: AlertEngine, sample: MemorySample, trend, start: float = 0) -> list:
    """The transitions of LEAK_FOR_CHECKS checks in a row (the leak rule's hold)."""
    return [t for minute in range(LEAK_FOR_CHECKS) for t in run(engine, sample, start + minute, trend=trend)]


def test_a_leak_fires_only_after_it_held_for_five_checks():
    engine = AlertEngine(replace(T, for_checks=1))
    for minute in range(LEAK_FOR_CHECKS - 1):
        assert kinds(run(engine, make_sample(500), minute, trend=windows(fast=30.0)), Rule.LEAK_TREND) == []
    assert kinds(run(engine, make_sample(500), 9, trend=windows(fast=30.0)), Rule.LEAK_TREND) == [Transition.FIRED]


def test_a_fast_leak_fires_when_the_threshold_is_within_the_horizon():
    engine = AlertEngine(replace(T, for_checks=1, leak_horizon_hours=24, leak_min_mib_per_hour=2))
    out = held(engine, make_sample(500), windows(fast=30.0))  # 300 MiB to 80 %: 10 h
    assert kinds(out, Rule.LEAK_TREND) == [Transition.FIRED]
    assert "30.0 MiB/h over the last 30 min" in out[0].detail and "in 10.0 h" in out[0].detail
    calm = held(engine, make_sample(500), windows(fast=0.5, since=0.0), start=9)
    assert kinds(calm, Rule.LEAK_TREND) == [Transition.RESOLVED]


def test_a_fast_window_beyond_the_horizon_waits_for_the_slow_one_and_its_horizon():
    t = replace(T, for_checks=1, leak_horizon_hours=24, leak_slow_horizon_hours=168, leak_min_mib_per_hour=2)
    # 300 MiB of headroom at 5 MiB/h: 60 h, beyond the fast window's 24 h, within the slow one's week
    assert kinds(held(AlertEngine(t), make_sample(500), windows(fast=5.0)), Rule.LEAK_TREND) == []
    out = held(AlertEngine(t), make_sample(500), windows(fast=5.0, slow=5.0))
    assert kinds(out, Rule.LEAK_TREND) == [Transition.FIRED] and "over the last 2.0 h" in out[0].detail
    # 2 MiB/h: 150 h, beyond a 100 h slow horizon
    slow_t = replace(t, leak_slow_horizon_hours=100)
    assert kinds(held(AlertEngine(slow_t), make_sample(500), windows(slow=2.0)), Rule.LEAK_TREND) == []


def test_a_leak_needs_a_steady_rise_far_above_the_noise():
    t = replace(T, for_checks=1, leak_min_mib_per_hour=2)
    for trend in (windows(fast=30.0, t=3.0), windows(fast=30.0, steady=False), windows(fast=1.0)):
        assert kinds(held(AlertEngine(t), make_sample(500), trend), Rule.LEAK_TREND) == []


def test_a_firing_leak_resolves_only_once_the_level_has_stopped_rising_for_the_hold():
    """A stepped or saw-tooth leak calms the short window between its steps: it used to resolve
    and fire again five times in 70 minutes, each "resolved" still saying RSS rises."""
    engine = AlertEngine(replace(T, for_checks=1, leak_min_mib_per_hour=2))
    assert kinds(held(engine, make_sample(500), windows(fast=30.0, slow=30.0)), Rule.LEAK_TREND) == [Transition.FIRED]
    # the short window calmed down, the long one still rises: still firing, nothing new
    assert kinds(run(engine, make_sample(500), 9, trend=windows(fast=0.0, slow=30.0)), Rule.LEAK_TREND) == []
    # both calm, but the level since it fired is not judged yet, or still rises (the next step)
    for since in (None, 12.0):
        calm = held(engine, make_sample(500), windows(fast=0.0, slow=0.5, since=since), start=10)
        assert kinds(calm, Rule.LEAK_TREND) == [] and [a.rule for a in engine.active()] == [Rule.LEAK_TREND]
    # settled since it fired: resolved after the hold, not before, saying it stopped rising
    first = run(engine, make_sample(500), 20, trend=windows(fast=0.0, slow=0.5, since=0.2))
    assert kinds(first, Rule.LEAK_TREND) == []
    out = held(engine, make_sample(500), windows(fast=0.0, slow=0.5, since=0.2), start=21)
    (resolved,) = [t for t in out if t.rule is Rule.LEAK_TREND]
    assert resolved.kind is Transition.RESOLVED
    assert (
        resolved.detail
        == "RSS has stopped rising (at 500.0 MiB): no steady rise over the last 30 min, nor since the alert fired"
    )
    assert "MiB/h" not in resolved.detail  # a resolve never reports a rising trend


def test_a_leak_above_the_threshold_says_so():
    out = held(AlertEngine(replace(T, for_checks=1)), make_sample(900), windows(fast=30.0))
    leak = next(t for t in out if t.rule == Rule.LEAK_TREND)
    assert "already above 80 % of the limit" in leak.detail


def test_active_and_pending_views():
    engine = AlertEngine(T)
    run(engine, make_sample(850), 0)
    assert engine.pending() == {(Rule.MEMORY, "process"): 1}
    run(engine, make_sample(850), 1)
    run(engine, make_sample(850), 2)
    [active] = engine.active()
    assert active.rule == Rule.MEMORY and active.since == T0 + timedelta(minutes=2)


def test_leak_and_growth_alerts_name_the_top_growing_types():
    from polly.heap_types import TypeGrowth

    growing = (TypeGrowth("discord.message.Message", 400, 1000), TypeGrowth("discord.member.Member", 0, 300))
    rising = windows(fast=12.0)
    conditions = evaluate_rules(make_sample(), rising, T, checkpoint_growth_percent=35.0, growing_types=growing)
    details = {c.rule: c.detail for c in conditions}
    assert details[Rule.LEAK_TREND].endswith("; growing: Message +600, Member +300")
    assert "growing: Message +600, Member +300" in details[Rule.CHECKPOINT_GROWTH]
    assert "growing" not in evaluate_rules(make_sample(), rising, T)[-1].detail
    # With the part of RSS that grew between the same checkpoints: named first.
    from polly.rss_breakdown import PartChange

    part = PartChange("malloc_used", 20 * MIB, 95 * MIB)
    conditions = evaluate_rules(
        make_sample(), rising, T, checkpoint_growth_percent=35.0, growing_types=growing, grown_part=part
    )
    details = {c.rule: c.detail for c in conditions}
    assert details[Rule.LEAK_TREND].endswith("; grew: malloc in use +75.0 MiB; growing: Message +600, Member +300")
    assert "; grew: malloc in use +75.0 MiB; growing:" in details[Rule.CHECKPOINT_GROWTH]
