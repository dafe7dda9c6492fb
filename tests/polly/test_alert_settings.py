"""Runtime thresholds use the settings' ranges; hysteresis stays below its thresholds; retention of
automatic and manual checkpoints is separate; a structure that fails to report stops nothing."""

from __future__ import annotations

import pytest

from polly.alert_engine import AlertEngine
from polly.alert_rules import evaluate_rules
from polly.alerts import Rule, ThresholdError, Thresholds
from polly.config import ConfigError
from polly.memory_optimizer import MemoryMonitor
from polly.monitor_cycle import MonitorCycle
from polly.registry import StructureRegistry
from tests.clocks import FakeClock
from tests.settings import make_settings


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("repeat_minutes", 9e15, "10080"),
        ("for_checks", 9e15, "1-1000"),
        ("for_checks", 2.7, "not a whole number"),
        ("leak_horizon_hours", 9e15, "720"),
        ("leak_min_mib_per_hour", 9e15, "100000"),
        ("memory_percent", 0, "> 0"),
        ("hysteresis_percent", 80, "below"),
        ("memory_percent", 4, "hysteresis"),
    ],
)
def test_extreme_runtime_thresholds_are_refused_with_the_allowed_range(name, value, allowed):
    with pytest.raises(ThresholdError, match=allowed):
        Thresholds.default().updated(name, value)


def test_a_whole_number_threshold_is_stored_as_the_engine_uses_it():
    assert Thresholds.default().updated("for_checks", 2.0).for_checks == 2
    assert isinstance(Thresholds.default().updated("for_checks", 2.0).for_checks, int)


def test_a_hysteresis_at_or_above_a_threshold_is_refused_at_start_too(tmp_path):
    with pytest.raises(ConfigError, match=r"ALERT_HYSTERESIS_PERCENT=20 .*ALERT_CHECKPOINT_GROWTH_PERCENT"):
        make_settings(tmp_path, alert_hysteresis_percent=20)


async def test_manual_checkpoints_never_push_the_automatic_ones_out(tmp_path):
    from polly.enhanced_database import Database

    settings = make_settings(tmp_path, memory_checkpoint_retention=2, memory_auto_checkpoint_retention=2)
    db = Database(settings)
    await db.create_tables()
    try:
        monitor = MemoryMonitor(settings, db, structures=StructureRegistry(), clock=FakeClock(step_s=1))
        await monitor.checkpoint(automatic=True)
        await monitor.checkpoint(automatic=True)
        for i in range(5):
            await monitor.checkpoint(f"manual {i}")
        assert len(await monitor.list_checkpoints(automatic=True)) == 2
        assert [c.label for c in await monitor.list_checkpoints(automatic=False)] == ["manual 4", "manual 3"]
        assert await monitor.automatic_growth_percent() is not None
    finally:
        await db.dispose()


class Broken(dict):
    def __len__(self) -> int:
        raise RuntimeError("broken on purpose")


async def test_a_structure_that_cannot_report_is_skipped_and_every_other_rule_still_runs(tmp_path, caplog):
    settings = make_settings(tmp_path, memory_limit_mb=1, alert_for_checks=1)  # RSS is far above 1 MiB
    structures = StructureRegistry()
    structures.register("broken", Broken(), max_size=10)
    structures.bounded_dict("fine", max_size=10)["k"] = 1
    monitor = MemoryMonitor(settings, structures=structures, clock=FakeClock(step_s=60))
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.from_settings(settings)), None, structures)
    result = await cycle.tick()
    stats = {s.name: s for s in result.sample.structures}
    assert stats["broken"].failing == "RuntimeError: broken on purpose"
    assert stats["fine"].size == 1 and stats["fine"].failing is None
    assert Rule.MEMORY in {e.transition.rule for e in result.events}  # the memory rule fired anyway
    conditions = evaluate_rules(result.sample, cycle.leak_windows(), cycle.engine.thresholds)
    assert [(c.subject, c.evaluated) for c in conditions if c.subject in ("broken", "fine")] == [
        ("broken", False),  # not evaluated this tick: its alert state is kept, not resolved
        ("fine", True),
    ]
    assert "broken" not in {e.transition.subject for e in result.events}
    assert cycle.health.rules_not_evaluated == 1
    assert any("cannot report its size" in r.getMessage() for r in caplog.records)
