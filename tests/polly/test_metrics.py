"""The Prometheus text exposition written without prometheus_client, read back by its reference parser."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from polly.alert_engine import AlertEngine
from polly.alerts import Thresholds
from polly.memory_optimizer import MemoryMonitor
from polly.memory_utils import StructureRegistry
from polly.metrics import MetricsRenderer, family
from polly.monitor_cycle import MonitorCycle
from tests.settings import make_settings


def test_label_values_and_help_are_escaped_so_the_reference_parser_reads_them_back():
    text = family("x_bytes", "gauge", "help with \\ and\nnewline", [({"structure": 'a"b\\c\nd'}, 1.5)])
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.documentation == "help with \\ and\nnewline"
    assert parsed.samples[0].labels == {"structure": 'a"b\\c\nd'}
    assert parsed.samples[0].value == 1.5


def test_counters_get_the_total_suffix_and_special_floats_their_spelling():
    text = family("polly_runs", "counter", "Runs", [({}, 3)]) + family("g", "gauge", "G", [({}, float("inf"))])
    assert "polly_runs_total 3.0" in text and "# TYPE polly_runs_total counter" in text
    assert "g +Inf" in text


@pytest.fixture
def rendered(tmp_path) -> str:
    settings = make_settings(tmp_path, metrics_instance="shard-1")
    structures = StructureRegistry()
    structures.bounded_dict("cache", max_size=10)["k"] = {"last_attempt": 0.0}
    monitor = MemoryMonitor(settings, structures=structures)
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.default()), None, structures)
    monitor.sample(loop_lag_ms=2.0)
    return MetricsRenderer(cycle, "shard-1").render().decode()


def test_a_rendering_parses_and_carries_the_process_metrics(rendered):
    names = {s.name for f in text_string_to_metric_families(rendered) for s in f.samples}
    assert {"polly_memory_rss_bytes", "polly_tracked_structure_size", "polly_gc_collections_total"} <= names
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds"} <= names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (.ci/run installs it)")
def test_promtool_accepts_the_exposition(rendered):
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=rendered, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_profiled_functions_are_exported_with_their_name_as_the_only_extra_label(tmp_path):
    from polly.decorators import memory_profile

    @memory_profile
    def work() -> list[int]:
        return list(range(1000))

    work()
    work()
    settings = make_settings(tmp_path)
    structures = StructureRegistry()
    monitor = MemoryMonitor(settings, structures=structures)
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.default()), None, structures)
    text = MetricsRenderer(cycle, "x").render().decode()
    samples = {(s.name, s.labels.get("function")): s for f in text_string_to_metric_families(text) for s in f.samples}
    name = f"{__name__}.test_profiled_functions_are_exported_with_their_name_as_the_only_extra_label.<locals>.work"
    call = samples[("polly_profile_calls_total", name)]
    assert call.value == 2 and set(call.labels) == {"polly_instance", "function"}
    assert ("polly_profile_seconds_max", name) in samples


async def test_the_exposition_is_rendered_once_per_sample_and_again_after_a_tick(tmp_path):
    settings = make_settings(tmp_path)
    structures = StructureRegistry()
    cache = structures.bounded_dict("cache", max_size=100)
    monitor = MemoryMonitor(settings, structures=structures)
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.default()), None, structures)
    await cycle.tick()
    renderer = MetricsRenderer(cycle, "x")
    renderings = []
    families = renderer._families  # count the real renderings
    renderer._families = lambda s: (renderings.append(s), families(s))[1]

    def size_of_cache(text: str) -> float:
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        return next(s.value for s in samples if s.name == "polly_tracked_structure_size")

    first = [renderer.render().decode() for _ in range(1000)]
    assert len(renderings) == 1 and size_of_cache(first[-1]) == 0
    cache.update({i: i for i in range(5)})
    assert size_of_cache(renderer.render().decode()) == 0  # the sample, not a live reading
    await cycle.tick()
    assert size_of_cache(renderer.render().decode()) == 5 and len(renderings) == 2
