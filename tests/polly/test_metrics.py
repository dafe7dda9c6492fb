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


@pytest.fixture
def container_rendered(tmp_path, db) -> str:
    """A process in the recorded cgroup v2 tree, whose previous run was killed for memory."""
    from polly.alert_store import AlertStore
    from polly.post_mortem import PostMortem, Verdict
    from tests.polly.test_container import reader
    from tests.polly.test_post_mortem import last_run

    settings = make_settings(tmp_path)
    structures = StructureRegistry()
    monitor = MemoryMonitor(settings, structures=structures, container=reader("v2-signals"))
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.default()), AlertStore(db, 10), structures)
    assert cycle.runs is not None
    cycle.runs.previous, cycle.runs.judged = PostMortem(Verdict.KILLED, "oom_kill 0 → 1", last_run()), True
    monitor.sample()
    return MetricsRenderer(cycle, "c").render().decode()


def test_the_container_s_ceilings_events_working_set_pressure_and_the_previous_run(container_rendered):
    samples = [s for f in text_string_to_metric_families(container_rendered) for s in f.samples]

    def values(name: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in samples if s.name == name}

    limits = values("polly_memory_limit_bytes", "kind")
    assert limits["max"] == 512 * 2**20 and limits["high"] == 384 * 2**20 and "effective" in limits
    assert values("polly_cgroup_memory_events_total", "event") == {
        "high": 37,
        "low": 0,
        "max": 3,
        "oom": 1,
        "oom_kill": 1,
        "oom_group_kill": 0,
    }
    assert values("polly_cgroup_memory_stat_bytes", "part")["slab"] == 6 * 2**20
    pressure = {
        (s.labels["kind"], s.labels["window"]): s.value for s in samples if s.name == "polly_memory_pressure_percent"
    }
    assert pressure == {("some", "10s"): 4.2, ("some", "60s"): 18.75, ("full", "10s"): 1.0, ("full", "60s"): 3.5}
    assert values("polly_previous_run_unclean", "verdict") == {"killed_for_memory": 1.0}
    (working_set,) = [s.value for s in samples if s.name == "polly_cgroup_memory_working_set_bytes"]
    assert working_set == 240 * 2**20


def test_what_the_host_cannot_read_is_absent_not_zero(tmp_path):
    from polly.container import ContainerReader
    from polly.memory_limit import CgroupReader

    settings = make_settings(tmp_path)
    structures = StructureRegistry()
    nowhere = ContainerReader(CgroupReader(root=tmp_path, proc_cgroup=tmp_path / "no"), tmp_path / "no")
    monitor = MemoryMonitor(settings, structures=structures, container=nowhere)
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.default()), None, structures)
    monitor.sample()
    text = MetricsRenderer(cycle, "x").render().decode()
    for absent in ("polly_cgroup_memory", "polly_memory_pressure_percent", "polly_previous_run_unclean"):
        assert absent not in text
    assert text.count("polly_memory_limit_bytes{") == 1 and 'kind="effective"' in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (.ci/run installs it)")
def test_promtool_accepts_the_container_exposition(container_rendered):
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=container_rendered, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
