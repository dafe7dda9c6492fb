"""MemoryMonitor: real samples of this process, cgroup limits from fixture files, trend, checkpoints."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from polly.checkpoints import AutomaticGrowth
from polly.formatting import MIB
from polly.memory_limit import CgroupReader
from polly.memory_optimizer import (
    CheckpointError,
    MemoryMonitor,
    MemorySample,
    get_memory_stats,
    memory_profile,
    profile_table,
    rss_trend,
    set_default_monitor,
)
from polly.memory_utils import StructureRegistry
from polly.models import memory_checkpoints
from polly.process_stats import AccessDenied, LinuxProcess
from tests.clocks import START, FakeClock
from tests.conftest import STATS_KEYS
from tests.opened_files import opened_files
from tests.settings import make_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cgroup"


def reader(name: str) -> CgroupReader:
    return CgroupReader(root=FIXTURES / name / "sys", proc_cgroup=FIXTURES / name / "proc_cgroup")


def test_sample_uses_the_container_limit_not_the_host(tmp_path):
    monitor = MemoryMonitor(make_settings(tmp_path), structures=StructureRegistry(), cgroup=reader("v2"))
    sample = monitor.sample()
    assert sample.limit == 512 * MIB and sample.limit_source == "cgroup v2 memory.max"
    assert sample.percent_of_limit == pytest.approx(100 * sample.rss / (512 * MIB))


# ------------------------------------------------------------- sampling the real process


def test_sample_reads_the_real_process(tmp_path):
    registry = StructureRegistry()
    d = registry.bounded_dict("things", max_size=10)
    d.update({i: i for i in range(4)})
    monitor = MemoryMonitor(make_settings(tmp_path), structures=registry)
    sample = monitor.sample(loop_lag_ms=1.5)
    real = psutil.Process().memory_info().rss
    assert abs(sample.rss - real) < 64 * MIB
    assert sample.peak_rss is not None and sample.peak_rss >= sample.rss * 0.9
    assert sample.threads >= 1 and sample.open_fds is not None and sample.open_fds > 0
    assert sample.system_total >= sample.system_available > 0
    assert [(s.name, s.size, s.limit) for s in sample.structures] == [("things", 4, 10)]
    assert sample.loop_lag_ms == 1.5
    assert monitor.latest is sample
    # The tick's split of RSS (one read of /proc/self/status) adds up; USS/PSS come when shown.
    assert sample.rss_anon and sample.rss_file is not None and sample.rss_shmem is not None
    assert sample.rss_anon + sample.rss_file + sample.rss_shmem == sample.rss
    assert sample.uss is None and sample.pss is None
    completed = monitor.with_details(sample)
    assert completed.uss is not None and 0 < completed.uss <= completed.rss and completed.pss
    assert (completed.at, completed.rss) == (sample.at, sample.rss)
    assert monitor.latest is completed and monitor.with_details(completed) is completed
    assert completed.breakdown is not None and completed.breakdown.rss == sample.rss
    assert completed.breakdown.bytes_of("python_objects")


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux's smaps_rollup")
def test_a_tick_does_not_walk_the_mappings_and_a_shown_sample_walks_them_once(tmp_path):
    """smaps_rollup's read grows with the process (5 ms at 700 MiB): the tick reads status only."""
    monitor = MemoryMonitor(make_settings(tmp_path), structures=StructureRegistry())
    with opened_files() as opened:
        for _ in range(3):
            monitor.sample()
    assert not [p for p in opened if "smaps" in p]
    assert any(p.endswith("status") for p in opened)
    with opened_files() as opened:
        for _ in range(5):  # /mem stats, /health/memory and three scrapes of the same sample
            monitor.with_details(monitor.latest)
        monitor.stats_dict()
    assert [p for p in opened if "smaps" in p] == ["/proc/self/smaps_rollup"]


def test_access_denied_on_full_info_falls_back_to_rss(tmp_path):
    class HardenedProcess(LinuxProcess):
        def memory_full_info(self):
            raise AccessDenied("smaps_rollup: permission denied")

    monitor = MemoryMonitor(make_settings(tmp_path), structures=StructureRegistry(), process=HardenedProcess())
    sample = monitor.with_details(monitor.sample())
    assert sample.rss > 0 and sample.uss is None and sample.pss is None
    assert sample.breakdown is not None  # the allocators' statistics do not need smaps
    assert monitor.with_details(sample) is sample


def test_history_is_a_bounded_ring(tmp_path):
    monitor = MemoryMonitor(make_settings(tmp_path, memory_history_size=5), structures=StructureRegistry())
    for _ in range(12):
        monitor.sample()
    assert len(monitor.history) == 5


def test_sample_round_trips_through_json(tmp_path):
    registry = StructureRegistry()
    registry.bounded_dict("x", max_size=3)["k"] = 1
    monitor = MemoryMonitor(make_settings(tmp_path), structures=registry)
    sample = monitor.sample()
    again = MemorySample.from_dict(json.loads(json.dumps(sample.to_dict())))
    assert again == sample


# ------------------------------------------------------------- trend


def series(values_mib: list[float], step_s: float = 60) -> list[tuple[float, int]]:
    start = START.timestamp()
    return [(start + i * step_s, int(v * MIB)) for i, v in enumerate(values_mib)]


def test_trend_of_a_steady_process_is_flat_with_no_projection():
    trend = rss_trend(series([100.0] * 60), window_s=3600, threshold_bytes=800 * MIB)
    assert trend.slope_mib_per_hour == pytest.approx(0.0, abs=1e-9)
    assert trend.seconds_to_threshold is None
    assert not trend.rising


def test_trend_of_a_leak_gives_slope_and_time_to_threshold():
    # 1 MiB per minute = 60 MiB/h, from 100 MiB; 800 MiB threshold
    trend = rss_trend(series([100.0 + i for i in range(60)]), window_s=3600, threshold_bytes=800 * MIB)
    assert trend.slope_mib_per_hour == pytest.approx(60.0)
    assert trend.seconds_to_threshold == pytest.approx((800 - 159) * 60, rel=1e-6)


def test_trend_restarts_after_a_big_drop():
    # leak, restart (drop to 50), then a flat line: the trend must be flat, not negative
    values = [100.0 + 2 * i for i in range(30)] + [50.0] * 30
    trend = rss_trend(series(values), window_s=3600, threshold_bytes=800 * MIB)
    assert trend.samples == 30
    assert trend.slope_mib_per_hour == pytest.approx(0.0, abs=1e-9)


def test_trend_uses_only_the_window():
    values = [100.0 + 10 * i for i in range(60)] + [700.0] * 60
    trend = rss_trend(series(values), window_s=30 * 60, threshold_bytes=800 * MIB)
    assert trend.slope_mib_per_hour == pytest.approx(0.0, abs=1e-9)


def test_trend_needs_three_samples():
    assert rss_trend(series([1.0, 2.0]), window_s=3600).slope_mib_per_hour is None


# ------------------------------------------------------------- checkpoints


async def test_checkpoints_persist_across_a_new_monitor(tmp_path, db):
    settings = make_settings(tmp_path)
    clock = FakeClock()
    first = MemoryMonitor(settings, db, structures=StructureRegistry(), clock=clock)
    await first.checkpoint("before")
    clock.advance(60)
    await first.checkpoint()  # default label is the UTC time

    second = MemoryMonitor(settings, db, structures=StructureRegistry())
    labels = [c.label for c in await second.list_checkpoints()]
    assert labels == ["2026-01-01 00:01:00 UTC", "before"]
    assert await second.refresh_checkpoint_count() == 2
    stored = await second.get_checkpoint("before")
    assert stored is not None and stored.sample.rss > 0 and stored.sample.gc_objects


async def test_checkpoint_retention_keeps_the_newest_n(tmp_path, db):
    monitor = MemoryMonitor(make_settings(tmp_path, memory_checkpoint_retention=3), db, structures=StructureRegistry())
    for i in range(7):
        await monitor.checkpoint(f"cp{i}")
    assert [c.label for c in await monitor.list_checkpoints()] == ["cp6", "cp5", "cp4"]
    assert monitor.checkpoints_count == 3


async def test_duplicate_label_and_unknown_label_are_clear_errors(tmp_path, db):
    monitor = MemoryMonitor(make_settings(tmp_path), db, structures=StructureRegistry())
    await monitor.checkpoint("a")
    with pytest.raises(CheckpointError, match="'a' already exists"):
        await monitor.checkpoint("a")
    with pytest.raises(CheckpointError, match="No checkpoint is named 'zzz'"):
        await monitor.compare("zzz", "a")
    with pytest.raises(CheckpointError, match="1 to 100"):
        await monitor.checkpoint("x" * 101)


async def test_compare_reports_rss_structures_and_gc_changes(tmp_path, db):
    registry = StructureRegistry()
    d = registry.bounded_dict("cache", max_size=100_000)
    monitor = MemoryMonitor(make_settings(tmp_path), db, structures=registry)
    # The count includes garbage not yet collected, and what earlier tests' loose ends (a closed
    # bot's callbacks) free while this test awaits: let them run out, then start from a clean heap.
    for _ in range(5):
        gc.collect()
        await asyncio.sleep(0.02)
    await monitor.checkpoint("before")
    hoard = [[i] for i in range(20_000)]  # 20,000 GC-tracked lists
    block = b"x" * (64 * MIB)  # above glibc's mmap threshold: fresh, touched pages
    for i in range(500):
        d[i] = i
    gc.collect()
    await monitor.checkpoint("after")
    result = await monitor.compare("before", "after")
    assert result.rss_change > 32 * MIB
    assert result.rss_change_percent > 0
    assert [(s.name, s.before, s.after, s.change) for s in result.structures] == [("cache", 0, 500, 500)]
    assert result.gc_objects_change is not None and result.gc_objects_change >= 18_000  # other objects come and go
    assert result.pool_checked_out_change == 0
    assert result.top_allocations == ()
    del hoard, block


async def test_compare_with_tracemalloc_names_the_growing_line_and_its_callers(tmp_path, db):
    monitor = MemoryMonitor(make_settings(tmp_path), db, structures=StructureRegistry())
    monitor.set_tracing(True)
    try:
        await monitor.checkpoint("t0")
        hoard = [bytes(2048) for _ in range(5000)]  # the growing line
        await monitor.checkpoint("t1")
    finally:
        monitor.set_tracing(False)
    result = await monitor.compare("t0", "t1")
    assert result.top_allocations, "expected allocation growth"
    top = result.top_allocations[0]
    innermost, *callers = top.where.split(" ← ")
    assert innermost == f"tests/polly/test_memory_optimizer.py:{_line_of('bytes(2048)')}"
    assert callers, "MEMORY_TRACE_FRAMES keeps the callers too"
    assert top.size_change >= 5000 * 2048
    assert len(result.top_allocations) <= 10
    del hoard


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line and "hoard =" in line)


async def test_automatic_growth_percent_compares_the_two_newest_automatic_checkpoints(tmp_path, db):
    monitor = MemoryMonitor(make_settings(tmp_path), db, structures=StructureRegistry())
    assert await monitor.automatic_growth_percent() is None
    await monitor.checkpoint("auto-1", automatic=True)
    await monitor.checkpoint("manual")
    await monitor.checkpoint("auto-2", automatic=True)
    growth = await monitor.automatic_growth_percent()
    a, b = await monitor.get_checkpoint("auto-1"), await monitor.get_checkpoint("auto-2")
    assert growth == pytest.approx(100 * (b.sample.rss - a.sample.rss) / a.sample.rss)


async def test_growth_from_a_checkpoint_taken_during_the_warm_up_is_not_compared(tmp_path, db):
    """After a start the first automatic checkpoint sees RSS before caches warm up: growth from
    it to the next one is warm-up, not a leak (it alerted an hour after every start)."""
    monitor = MemoryMonitor(make_settings(tmp_path), db, structures=StructureRegistry())
    await monitor.checkpoint("auto-1", automatic=True)
    await monitor.checkpoint("auto-2", automatic=True)
    first = await monitor.get_checkpoint("auto-1")
    assert (await monitor.automatic_growth(since=first.created_at)).percent is not None
    assert await monitor.automatic_growth(since=first.created_at + timedelta(seconds=1)) == AutomaticGrowth(None, ())


async def test_checkpoints_without_a_database_are_kept_in_memory_and_bounded(tmp_path):
    monitor = MemoryMonitor(make_settings(tmp_path, memory_checkpoint_retention=2), structures=StructureRegistry())
    for label in ("a", "b", "c"):
        await monitor.checkpoint(label)
    assert [c.label for c in await monitor.list_checkpoints()] == ["c", "b"]


# ------------------------------------------------------------- stats payload, profile, formatting


def test_get_memory_stats_is_json_with_the_planned_keys(tmp_path):
    monitor = MemoryMonitor(make_settings(tmp_path), structures=StructureRegistry())
    set_default_monitor(monitor)
    try:
        monitor.sample()
        stats = get_memory_stats()
    finally:
        set_default_monitor(None)
    json.dumps(stats)
    assert set(STATS_KEYS) <= set(stats)
    assert stats["rss"] == round(monitor.latest.rss / MIB, 1)


async def test_memory_profile_records_sync_and_async_calls():
    @memory_profile
    def grow() -> list[bytes]:
        return [bytes(1024) for _ in range(10_000)]

    @memory_profile
    async def wait() -> int:
        await asyncio.sleep(0)
        return 3

    kept = grow()
    assert await wait() == 3
    await wait()
    sync_stats = profile_table[f"{__name__}.test_memory_profile_records_sync_and_async_calls.<locals>.grow"]
    async_stats = profile_table[f"{__name__}.test_memory_profile_records_sync_and_async_calls.<locals>.wait"]
    assert sync_stats.calls == 1 and sync_stats.total_s > 0
    assert async_stats.calls == 2
    assert len(profile_table) <= profile_table.max_size
    del kept


@pytest.fixture
async def any_db(each_database):
    """An empty checkpoint table on each database."""
    async with each_database.transaction() as conn:
        await conn.execute(memory_checkpoints.delete())
    return each_database


async def test_the_same_label_twice_at_once_is_one_checkpoint_and_one_clear_refusal(tmp_path, any_db):
    monitor = MemoryMonitor(make_settings(tmp_path), any_db, structures=StructureRegistry())
    results = await asyncio.gather(*(monitor.checkpoint("deploy") for _ in range(2)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], CheckpointError), results
    assert "'deploy' already exists" in str(refused[0])
    assert [c.label for c in await monitor.list_checkpoints()] == ["deploy"]


async def test_default_labels_in_the_same_second_at_once_all_get_stored(tmp_path, any_db):
    monitor = MemoryMonitor(make_settings(tmp_path), any_db, structures=StructureRegistry(), clock=FakeClock())
    stored = await asyncio.gather(*(monitor.checkpoint() for _ in range(4)))
    base = START.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert sorted(c.label for c in stored) == sorted([base, f"{base} #2", f"{base} #3", f"{base} #4"])
    assert len(await monitor.list_checkpoints()) == 4


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ("before\x00after", "control characters (found U+0000)"),
        ("tab\there", "control characters (found U+0009)"),
        ("\u200b", "at least one visible character"),
        ("\u200b\u200d\u2060", "at least one visible character"),
        ("\u3164\u3164", "at least one visible character"),
        (" \u00a0\u2800 ", "at least one visible character"),
    ],
)
async def test_labels_are_validated_the_same_way_on_every_database(tmp_path, any_db, label, why):
    monitor = MemoryMonitor(make_settings(tmp_path), any_db, structures=StructureRegistry())
    with pytest.raises(CheckpointError, match=re.escape(why)):
        await monitor.checkpoint(label)
    assert await monitor.list_checkpoints() == []
    stored = await monitor.checkpoint("après déploiement 🚀")  # visible Unicode is fine everywhere
    assert (await monitor.get_checkpoint(stored.label)) is not None


def test_no_trend_figure_before_enough_samples_over_ten_minutes(tmp_path):
    """Three samples of a bot's first two minutes used to be shown as '+23 MiB/h'."""
    from polly.memory_utils import StructureRegistry
    from tests.clocks import FakeClock

    settings = make_settings(tmp_path, alert_for_checks=3)
    monitor = MemoryMonitor(settings, structures=StructureRegistry(), clock=FakeClock(step_s=60))
    for _ in range(5):
        monitor.sample()
    early = monitor.trend()
    assert early.slope_mib_per_hour is None and early.samples == 5  # 4 minutes: collecting
    for _ in range(7):
        monitor.sample()
    assert monitor.trend().slope_mib_per_hour is not None  # 11 minutes of samples


async def test_automatic_growth_names_the_part_of_rss_that_grew(tmp_path):
    """The growth and leak-trend alerts say which part grew: here 64 MiB of live small objects."""
    monitor = MemoryMonitor(make_settings(tmp_path), structures=StructureRegistry())
    await monitor.checkpoint("auto-1", automatic=True)
    keep = [(i, i) for i in range(64 * MIB // 64)]
    await monitor.checkpoint("auto-2", automatic=True)
    growth = await monitor.automatic_growth()
    assert growth.part is not None and growth.part.name == "python_objects"
    assert growth.part.change > 56 * MIB
    stored = await monitor.get_checkpoint("auto-2")
    assert stored.sample.breakdown is not None  # kept with the checkpoint, read back from the database
    del keep
