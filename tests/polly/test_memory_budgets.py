"""Memory ceilings of the core, enforced by pytest-memray when run with --memray (as CI does).

Ceilings come from measurements on this project's CI machine with a stated margin; see each test.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from polly.alert_engine import AlertEngine
from polly.alert_rules import evaluate_rules
from polly.alerts import Thresholds
from polly.heap_types import count_types_in_pieces, pick
from polly.memory_optimizer import MemoryMonitor
from polly.memory_utils import StructureRegistry, cleanup_global_dict
from polly.trend import LeakWatch
from tests.settings import make_settings


def monitor_with_structures(tmp_path, history: int) -> MemoryMonitor:
    registry = StructureRegistry()
    for i in range(20):
        d = registry.bounded_dict(f"structure_{i}", max_size=1000)
        d.update({k: {"last_attempt": time.time()} for k in range(100)})
    return MemoryMonitor(make_settings(tmp_path, memory_history_size=history), structures=registry)


@pytest.fixture
def warm_monitor(tmp_path):
    """A monitor whose history ring is full and whose code paths have all run once.

    CPython keeps freed small tuples and floats on free lists instead of returning them to the
    allocator; memray would count a list filled during the test as a leak. Warming up here,
    outside the measured call, fills them first.
    """
    monitor = monitor_with_structures(tmp_path, history=10)
    engine = AlertEngine(Thresholds.default())
    watch = LeakWatch(1800, 7200)
    for _ in range(3000):
        sample = monitor.sample()
        engine.evaluate(evaluate_rules(sample, watch.windows(monitor.history, None), engine.thresholds), sample.at)
    return monitor, engine, watch


@pytest.mark.limit_leaks("64 KB")
def test_a_loop_of_1000_samples_with_rules_leaks_nothing(warm_monitor):
    """Measured: nothing retained per location beyond interpreter noise; 64 KB per location."""
    monitor, engine, watch = warm_monitor
    for _ in range(1000):
        sample = monitor.sample()
        engine.evaluate(evaluate_rules(sample, watch.windows(monitor.history, None), engine.thresholds), sample.at)
    assert len(monitor.history) == 10


@pytest.mark.limit_memory("512 KB")
def test_1000_samples_fit_a_memory_ceiling(tmp_path):
    """Measured 195 KB: the history keeps (time, RSS) points, not whole samples (4.2 MB before);
    ceiling 512 KB."""
    monitor = monitor_with_structures(tmp_path, history=1000)
    for _ in range(1000):
        monitor.sample()
    assert len(monitor.history) == 1000


@pytest.mark.limit_memory("40 MB")
def test_cleanup_of_100000_entries_fits_a_memory_ceiling():
    """Measured 30.6 MB, of which the 100,000 entries themselves are about 21 MB; ceiling +30 %."""
    d = {i: {"last_attempt": float(i)} for i in range(100_000)}
    assert cleanup_global_dict(d, max_size=1000, max_age_minutes=None) == 99_000


@pytest.fixture
def heap_list():
    """A heap walk's list of 300,000 objects (three pieces), made outside the measured call."""
    objects = [object() for _ in range(300_000)]
    asyncio.run(count_types_in_pieces(objects[:10]))  # the code paths once, outside the measurement
    return objects


@pytest.mark.limit_memory("128 KB")
def test_counting_a_heap_walk_copies_none_of_it(heap_list):
    """The count reads its pieces through one iterator: a slice per piece would copy 0.8 MB of
    pointers. Measured: a few KB besides the counts (the event loop's own); ceiling 128 KB, under
    one slice."""
    counts = asyncio.run(count_types_in_pieces(heap_list))
    assert counts[object] == 300_000
    assert pick(heap_list[:5], {object}) == heap_list[:5]
