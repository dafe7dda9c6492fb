"""The container's signals, read from recorded cgroup v1/v2 trees and from this machine's own
cgroup and PSI; the throttling and pressure rules on those readings."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from polly.alert_engine import AlertEngine
from polly.alert_rules import evaluate_rules
from polly.alerts import Rule, Thresholds, Transition
from polly.container import ContainerMark, ContainerMemory, ContainerReader, Pressure, parse_pressure
from polly.formatting import MIB
from polly.memory_limit import CgroupReader
from tests.polly.test_alerts import T0, make_sample

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cgroup"


def reader(name: str, pressure: str = "proc_pressure") -> ContainerReader:
    base = FIXTURES / name
    return ContainerReader(CgroupReader(root=base / "sys", proc_cgroup=base / "proc_cgroup"), base / pressure)


def test_cgroup_v2_both_ceilings_events_stat_working_set_and_the_cgroups_own_pressure():
    c = reader("v2-signals").read()
    assert (c.version, c.usage, c.limit_max, c.limit_high) == (2, 300 * MIB, 512 * MIB, 384 * MIB)
    assert c.events == {"low": 0, "high": 37, "max": 3, "oom": 1, "oom_kill": 1, "oom_group_kill": 0}
    assert c.throttle_events == 40 and c.oom_kills == 1
    assert c.stat == {"anon": 200 * MIB, "file": 90 * MIB, "kernel": 8 * MIB, "sock": 65536, "slab": 6 * MIB}
    assert c.working_set == 300 * MIB - 60 * MIB  # usage minus inactive_file, as kubelet computes it
    assert c.pressure == Pressure("cgroup", 4.2, 18.75, 1.0, 3.5)
    assert c.unavailable == ()


def test_cgroup_v1_hard_and_soft_limits_failcnt_oom_kill_and_the_hosts_pressure():
    c = reader("v1-signals").read()
    assert (c.version, c.limit_max, c.limit_high, c.high_kind) == (1, 512 * MIB, None, "soft")  # soft: unlimited
    assert c.events == {"max": 42, "oom_kill": 2}  # v1 counts no "high" or "oom": absent, not 0
    assert c.throttle_events == 42 and c.oom_kills == 2
    assert set(c.stat) == {"anon", "file", "kernel", "sock"}  # the recorded kernel's v1 has no slab line
    assert c.working_set == c.usage - 127803392  # total_inactive_file
    assert c.pressure == Pressure("host", 1.5, 12.25, 0.0, 2.5)
    assert any("slab" in why for why in c.unavailable)


def test_what_cannot_be_read_is_named_never_zero(tmp_path):
    c = reader("v2-no-psi", pressure="absent").read()
    assert (c.limit_max, c.limit_high) == (None, None)  # "max": no ceiling
    assert c.events == {} and c.throttle_events is None and c.oom_kills is None
    assert c.pressure is None
    said = " ".join(c.unavailable)
    assert "memory.events" in said and "pressure" in said and "kernel, sock, slab" in said
    outside = ContainerReader(CgroupReader(root=tmp_path, proc_cgroup=tmp_path / "nope"), tmp_path / "nope").read()
    assert outside.version is None and outside.usage is None and "no memory cgroup" in " ".join(outside.unavailable)


def test_a_reading_survives_the_sample_s_round_trip_through_json():
    sample = replace(make_sample(), container=reader("v2-signals").read())
    again = type(sample).from_dict(sample.to_dict())
    assert again.container == sample.container


def test_pressure_lines_without_full_or_damaged():
    assert parse_pressure(b"some avg10=1.00 avg60=2.00 avg300=3.00 total=4", "host") == Pressure("host", 1.0, 2.0)
    assert parse_pressure(b"garbage", "host") is None


def test_this_machine_s_own_cgroup_and_psi_are_read():
    """The real kernel: whatever this host is, the reading says what it is or why not."""
    c = ContainerReader().read()
    if c.version is not None:
        assert c.usage is not None and c.usage > 0
        assert c.path is not None and Path(c.path).is_dir()
    else:
        assert any("cgroup" in why for why in c.unavailable)
    if Path("/proc/pressure/memory").exists():
        assert c.pressure is not None and 0 <= c.pressure.some_avg60 <= 100
    else:
        assert c.pressure is None


# ---------------------------------------------------------------- the rules on these readings

T = replace(Thresholds.default(), for_checks=3, throttled_events=10, memory_pressure_percent=10, hysteresis_percent=5)


def with_container(minute: int, **changes: object):
    base = ContainerMemory(2, "/x", 100 * MIB, 512 * MIB, 384 * MIB, {"high": 0, "max": 0}, {}, None, None)
    return replace(make_sample(), at=T0 + timedelta(minutes=minute), container=replace(base, **changes))


def throttle_run(counts: list[int]) -> list[tuple[int, Transition]]:
    """Feed cumulative memory.high counts, one per check, through the rules and the engine as the
    cycle does (the window: the reading ALERT_FOR_CHECKS checks ago)."""
    engine, marks, out = AlertEngine(T), [], []
    for minute, high in enumerate(counts):
        sample = with_container(minute, events={"high": high, "max": 0})
        marks.append(ContainerMark(sample.at, sample.container))
        marks = marks[-(T.for_checks + 1) :]
        start = marks[0] if len(marks) > 1 else None
        for t in engine.evaluate(evaluate_rules(sample, None, T, window_start=start), sample.at):
            if t.rule is Rule.THROTTLED:
                out.append((minute, t.kind))
    return out


def test_throttling_fires_at_once_past_the_count_and_resolves_after_a_quiet_window():
    # 4 hits per check from minute 2: 12 over 3 checks at minute 4; none after minute 5, so the
    # window of minutes 6-8 (from the reading at 5) is the first quiet one
    counts = [0, 0, 4, 8, 12, 16, 16, 16, 16, 16]
    assert throttle_run(counts) == [(4, Transition.FIRED), (8, Transition.RESOLVED)]


def test_intermittent_throttling_does_not_flap():
    counts = [0, 20, 20, 40, 40, 60, 60, 60, 60]  # a burst every other check
    assert throttle_run(counts) == [(1, Transition.FIRED), (8, Transition.RESOLVED)]


def test_throttling_detail_names_both_ceilings_and_the_loop_lag():
    before = ContainerMark(T0, with_container(0).container)
    now = replace(with_container(3, events={"high": 30, "max": 2}), loop_lag_ms=250.0)
    (condition,) = [c for c in evaluate_rules(now, None, T, window_start=before) if c.rule is Rule.THROTTLED]
    assert condition.active and condition.value == 32
    assert "memory.high 30 time(s), memory.max 2 time(s)" in condition.detail
    assert "memory.max 512.0 MiB, memory.high 384.0 MiB" in condition.detail
    assert "event-loop lag 250 ms" in condition.detail


def test_a_recreated_cgroup_whose_counters_start_again_is_not_negative():
    before = ContainerMark(T0, with_container(0, events={"high": 500, "max": 0}).container)
    now = with_container(1, events={"high": 3, "max": 0})
    (condition,) = [c for c in evaluate_rules(now, None, T, window_start=before) if c.rule is Rule.THROTTLED]
    assert condition.value == 0 and not condition.active


@pytest.mark.parametrize("events", [{}, {"oom_kill": 0}])
def test_no_throttling_rule_without_the_counters(events):
    before = ContainerMark(T0, with_container(0, events=events).container)
    now = with_container(1, events=events)
    assert not [c for c in evaluate_rules(now, None, T, window_start=before) if c.rule is Rule.THROTTLED]


def test_pressure_fires_after_the_hold_and_resolves_below_the_band():
    engine, seen = AlertEngine(T), []
    for minute, avg60 in enumerate([2, 12, 14, 15, 9, 6, 4.9, 12]):
        sample = with_container(minute, pressure=Pressure("cgroup", avg60, avg60, 0.5, 1.0))
        seen += [(minute, t.kind) for t in engine.evaluate(evaluate_rules(sample, None, T), sample.at)]
    assert seen == [(3, Transition.FIRED), (6, Transition.RESOLVED)]


def test_no_pressure_rule_without_psi():
    assert not [c for c in evaluate_rules(with_container(0), None, T) if c.rule is Rule.PRESSURE]
