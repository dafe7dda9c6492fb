"""The /mem use cases without Discord: a memory layer on a SQLite file, a fake clock, a fake sink.
Each is the one call its command makes."""

from __future__ import annotations

import tracemalloc

import pytest

from polly import clock
from polly.alert_settings import NoAlertChannelError
from polly.alerts import ThresholdError
from polly.checkpoints import CheckpointError
from polly.memory_layer import MemoryLayer
from polly.registry import StructureRegistry
from tests.clocks import FakeClock
from tests.polly.test_alert_outbox import FakeSink, fired
from tests.settings import make_settings


@pytest.fixture
async def layer(tmp_path):
    opened = MemoryLayer(make_settings(tmp_path), clock=FakeClock(step_s=1), structures=StructureRegistry())
    await opened.open()
    yield opened
    await opened.close()


async def test_a_checkpoint_compares_with_the_previous_one_or_the_one_named(layer):
    first = await layer.ops.checkpoint("a", None, None)
    assert first.comparison is None and first.stored.label == "a"
    second = await layer.ops.checkpoint("b", None, None)
    assert second.comparison is not None and second.comparison.before.label == "a"
    third = await layer.ops.checkpoint("c", "a", None)
    assert third.comparison is not None and third.comparison.before.label == "a"
    assert await layer.ops.checkpoint_labels("") == ["c", "b", "a"]


async def test_a_refused_checkpoint_leaves_tracing_as_it_was(layer):
    assert not tracemalloc.is_tracing()
    with pytest.raises(CheckpointError):
        await layer.ops.checkpoint("x", "no such label", trace=True)
    assert not tracemalloc.is_tracing()
    await layer.ops.checkpoint("taken", None, None)
    with pytest.raises(CheckpointError):
        await layer.ops.checkpoint("taken", None, trace=True)
    assert not tracemalloc.is_tracing()


async def test_a_threshold_is_stored_before_it_applies_and_survives_a_restart(tmp_path):
    settings = make_settings(tmp_path)
    first = MemoryLayer(settings, clock=FakeClock(), structures=StructureRegistry())
    await first.open()
    view = await first.ops.alerts(threshold="memory_percent", value=70)
    assert view.notes == ("Threshold memory_percent is now 70.",) and view.thresholds.memory_percent == 70
    with pytest.raises(ThresholdError, match="Give both"):
        await first.ops.alerts(threshold="memory_percent")
    await first.ops.alerts(channel_id=1234)
    await first.close()

    second = MemoryLayer(settings, clock=FakeClock(), structures=StructureRegistry())
    await second.open()  # restores what operators set at runtime
    try:
        view = await second.ops.alerts()
        assert view.thresholds.memory_percent == 70 and view.channel_id == 1234 and view.notes == ()
    finally:
        await second.close()


async def test_a_new_alert_channel_gets_what_waited_at_once(layer):
    await layer.cycle.alerts.add(fired("waiting"))
    sink = FakeSink()
    view = await layer.ops.alerts(channel_id=99, new_channel=sink)
    assert sink.subjects() == ["waiting"] and view.waiting == 0
    assert view.notes == ("Alerts now go to <#99>.",) and [e.subject for e in view.recent] == ["waiting"]


async def test_a_trace_needs_the_alert_channel_its_results_go_to(layer):
    async def report(session, growth):
        pass

    with pytest.raises(NoAlertChannelError, match="No alert channel is set"):
        layer.ops.start_trace("ops", 1, report)
    await layer.ops.alerts(channel_id=5)
    session = layer.ops.start_trace("ops", 1, report)
    assert session.who == "ops" and tracemalloc.is_tracing()
    await layer.close()  # the layer's end ends the trace too
    assert not tracemalloc.is_tracing()


async def test_a_fleet_cleanup_on_sqlite_cleans_this_process_and_says_so(layer):
    result = await layer.ops.cleanup("ops", dry_run=True, fleet=True)
    assert result.report is not None and result.report.dry_run
    assert result.note == "This process only: on SQLite it is the whole fleet."
    plain = await layer.ops.cleanup("ops", dry_run=False, fleet=False)
    assert plain.note is None and not plain.by_fleet


async def test_stats_and_fleet_read_the_layer_s_clock(layer):
    view = layer.ops.stats()
    assert view.now.year == 2026 and view.firing == 0 and not view.tracing
    fleet = await layer.ops.fleet()
    assert len(fleet.members) == 1 and not fleet.shared
    assert clock.current_clock() is layer.monitor.clock  # the open layer's clock is the process's
    await layer.close()
    assert clock.current_clock() is not layer.monitor.clock  # taken back


async def test_one_failing_step_of_a_tick_stops_none_of_the_others(tmp_path, monkeypatch):
    """The error-isolation policy: the automatic checkpoint and the history cannot be stored (the
    database refuses), yet the memory rule is evaluated and its alert queued in the same tick."""
    settings = make_settings(tmp_path, alert_memory_percent=0.02, alert_hysteresis_percent=0.01, alert_for_checks=1)
    layer = MemoryLayer(settings, clock=FakeClock(step_s=60), structures=StructureRegistry())
    await layer.open()
    try:

        async def refuse(*_args, **_kwargs):
            raise RuntimeError("database is locked")

        monkeypatch.setattr(layer.monitor, "checkpoint", refuse)
        monkeypatch.setattr(layer.cycle.history, "flush_due", refuse)
        result = await layer.cycle.tick()
        assert layer.cycle.health.failed_steps == ("chart history", "automatic checkpoint")
        assert layer.cycle.health.errors == 2 and result.checkpoint is None
        assert [e.transition.rule.value for e in result.events] == ["memory_percent"]
        monkeypatch.undo()
        await layer.cycle.tick()
        assert layer.cycle.health.failed_steps == ()
    finally:
        await layer.close()


async def test_a_lone_surrogate_in_a_label_is_refused_in_one_line(layer):
    """Discord clients can send half a character; no database, log line or reply can carry one."""
    with pytest.raises(CheckpointError, match="lone surrogate \\(found U\\+D800"):
        await layer.ops.checkpoint("bad \ud800 label", None, None)
    with pytest.raises(CheckpointError, match="U\\+DC00, half of a character"):
        await layer.ops.checkpoint("fine", "\udc00", None)
    assert await layer.ops.checkpoint_labels("") == []  # nothing was stored


async def test_two_threshold_changes_at_once_both_stay_in_force(layer):
    import asyncio

    await asyncio.gather(
        layer.ops.alerts(threshold="memory_percent", value=70),
        layer.ops.alerts(threshold="dict_fill_percent", value=60),
    )
    thresholds = (await layer.ops.alerts()).thresholds
    assert (thresholds.memory_percent, thresholds.dict_fill_percent) == (70, 60)


async def test_tracemalloc_is_on_exactly_while_a_checkpoint_request_or_a_trace_still_wants_it(layer):
    """checkpoint trace:true during a trace survives the trace's end; trace:false during a trace keeps
    tracing for the trace (and says so) instead of leaving it to report "nothing held"."""
    reported = []

    async def report(session, growth):
        reported.append(growth)

    await layer.ops.alerts(channel_id=5)
    layer.ops.start_trace("ops", 30, report)
    stored = await layer.ops.checkpoint("on", None, trace=True)
    assert stored.tracing and stored.tracing_note is None
    await layer.cycle.traces.finish()  # the trace ends: the checkpoints still asked for tracing
    assert tracemalloc.is_tracing()
    await layer.ops.checkpoint("off", None, trace=False)
    assert not tracemalloc.is_tracing()

    layer.ops.start_trace("ops", 30, report)
    kept = await layer.ops.checkpoint("during", None, trace=False)
    assert tracemalloc.is_tracing() and kept.tracing_note is not None and "stays on" in kept.tracing_note
    held = [bytearray(512) for _ in range(500)]
    _session, growth = await layer.cycle.traces.finish()
    assert growth and not tracemalloc.is_tracing()
    del held
