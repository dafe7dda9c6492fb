"""Tracked structures, cleanup_global_dict, counters, GC and the cleanup decorator."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from polly.memory_utils import (
    BoundedDict,
    BoundedSet,
    StructureRegistry,
    cleanup_background_tasks_memory,
    cleanup_global_dict,
    force_garbage_collection,
    memory_cleanup_decorator,
    reset_counter_dict,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def minutes_ago(n: float) -> datetime:
    return NOW - timedelta(minutes=n)


# ------------------------------------------------------------- cleanup_global_dict: age pass


def test_age_pass_removes_entries_older_than_max_age_with_aware_datetimes():
    d = {1: {"last_attempt": minutes_ago(90)}, 2: {"last_attempt": minutes_ago(10)}}
    assert cleanup_global_dict(d, max_age_minutes=60, now=NOW.timestamp()) == 1
    assert list(d) == [2]


def test_naive_datetimes_are_read_as_utc():
    naive_old = minutes_ago(61).replace(tzinfo=None)
    naive_new = minutes_ago(59).replace(tzinfo=None)
    d = {"old": {"last_attempt": naive_old}, "new": {"last_attempt": naive_new}}
    assert cleanup_global_dict(d, max_age_minutes=60, now=NOW.timestamp()) == 1
    assert list(d) == ["new"]


def test_epoch_seconds_and_object_attributes_are_timestamps_too():
    @dataclass
    class Failure:
        last_attempt: float

    d = {
        "epoch-old": {"last_attempt": minutes_ago(120).timestamp()},
        "obj-old": Failure(minutes_ago(120).timestamp()),
        "obj-new": Failure(minutes_ago(1).timestamp()),
    }
    assert cleanup_global_dict(d, max_age_minutes=60, now=NOW.timestamp()) == 2
    assert list(d) == ["obj-new"]


def test_plain_counters_survive_the_age_pass():
    counters = {"message_not_found": 5, "rate_limited": 0, "flag": True}
    assert cleanup_global_dict(counters, max_size=None, max_age_minutes=0, now=NOW.timestamp()) == 0
    assert counters == {"message_not_found": 5, "rate_limited": 0, "flag": True}


def test_custom_timestamp_key_and_age_none_skips_age_pass():
    d = {i: {"seen": minutes_ago(1000)} for i in range(5)}
    assert cleanup_global_dict(d, max_size=10, max_age_minutes=None, timestamp_key="seen") == 0
    assert cleanup_global_dict(d, max_size=10, max_age_minutes=60, timestamp_key="seen", now=NOW.timestamp()) == 5


# ------------------------------------------------------------- cleanup_global_dict: size pass


def test_size_pass_trims_oldest_by_timestamp_not_insertion():
    # inserted newest-first: recency must come from the timestamps
    d = {i: {"last_attempt": minutes_ago(i)} for i in range(10)}
    removed = cleanup_global_dict(d, max_size=3, max_age_minutes=None)
    assert removed == 7
    assert sorted(d) == [0, 1, 2]


def test_size_pass_without_timestamps_trims_by_insertion_order():
    d = {f"k{i}": i for i in range(10)}
    assert cleanup_global_dict(d, max_size=4, max_age_minutes=None) == 6
    assert list(d) == ["k6", "k7", "k8", "k9"]


def test_exact_removal_count_with_both_passes():
    d = {i: {"last_attempt": minutes_ago(100 if i < 30 else i - 30)} for i in range(100)}
    # 30 stale, 70 fresh; size 50 removes 20 more of the fresh ones (oldest first)
    assert cleanup_global_dict(d, max_size=50, max_age_minutes=60, now=NOW.timestamp()) == 50
    assert len(d) == 50
    assert min(d) == 30 and max(d) == 79  # the 50 newest fresh entries (30..79 are minutes 0..49)


def test_dry_run_counts_exactly_and_changes_nothing():
    d = {i: {"last_attempt": minutes_ago(i)} for i in range(20)}
    snapshot = dict(d)
    assert cleanup_global_dict(d, max_size=5, max_age_minutes=10, now=NOW.timestamp(), dry_run=True) == 15
    assert d == snapshot


def test_survivors_keep_their_insertion_order_after_a_large_trim():
    d = {i: {"last_attempt": float(i)} for i in range(1000)}
    cleanup_global_dict(d, max_size=10, max_age_minutes=None)
    assert list(d) == list(range(990, 1000))


@pytest.mark.parametrize("kwargs", [{"max_size": -1}, {"max_age_minutes": -5}])
def test_negative_limits_raise_value_error(kwargs):
    with pytest.raises(ValueError, match=">= 0"):
        cleanup_global_dict({}, **kwargs)


def test_copes_with_a_million_entries():
    d = {i: {"last_attempt": float(i)} for i in range(1_000_000)}
    assert cleanup_global_dict(d, max_size=1000, max_age_minutes=None) == 999_000
    assert len(d) == 1000 and min(d) == 999_000


# ------------------------------------------------------------- counters


def test_reset_counter_dict_all_and_selected():
    counters = {"a": 3, "b": 0, "c": 7}
    assert reset_counter_dict(counters, ["a", "missing"]) == 1
    assert counters == {"a": 0, "b": 0, "c": 7}
    assert reset_counter_dict(counters) == 3
    assert set(counters.values()) == {0}


# ------------------------------------------------------------- bounded structures


def test_tracked_dict_written_100000_times_never_exceeds_its_limit():
    reg = StructureRegistry()
    d = reg.bounded_dict("failures", max_size=100)
    peak = 0
    for i in range(100_000):
        d[i % 7919] = {"count": i}
        peak = max(peak, len(d))
    assert peak == 100
    assert len(d) == 100


def test_bounded_dict_drops_the_oldest_and_a_write_refreshes_recency():
    d = BoundedDict(3)
    d["a"], d["b"], d["c"] = 1, 2, 3
    d["a"] = 10  # now newest
    d["d"] = 4  # evicts b, the least recently written
    assert list(d) == ["c", "a", "d"]
    d.update({"e": 5})
    d.setdefault("f", 6)
    assert len(d) == 3 and list(d) == ["d", "e", "f"]


def test_bounded_dict_expires_by_age_and_resizes():
    d = BoundedDict(10, max_age_minutes=30)
    for i in range(6):
        d[i] = {"last_attempt": minutes_ago(i * 10)}
    assert d.expire(now=NOW.timestamp()) == 2  # 40 and 50 minutes old
    d.resize(2)
    assert len(d) == 2


def test_bounded_set_and_deque_stay_bounded():
    reg = StructureRegistry()
    s = reg.bounded_set("seen", max_size=5)
    q = reg.bounded_deque("recent", max_size=5)
    for i in range(50):
        s.add(i)
        q.append(i)
    assert (len(s), len(q)) == (5, 5)
    assert sorted(s) == [45, 46, 47, 48, 49]
    assert isinstance(s, BoundedSet)


def test_registry_reports_size_limit_fill_and_oldest_age():
    reg = StructureRegistry()
    d = reg.bounded_dict("failures", max_size=10)
    for i in range(8):
        d[i] = {"last_attempt": minutes_ago(8 - i)}
    plain = reg.register("plain", {"x": {"last_attempt": minutes_ago(30)}}, max_size=4)
    assert plain == {"x": {"last_attempt": minutes_ago(30)}}
    stats = {s.name: s for s in reg.stats(now=NOW.timestamp())}
    assert stats["failures"].size == 8 and stats["failures"].limit == 10
    assert stats["failures"].fill_percent == 80.0
    assert stats["failures"].bounded is True
    assert stats["failures"].oldest_age_s == pytest.approx(8 * 60)
    assert stats["plain"].bounded is False and stats["plain"].oldest_age_s == pytest.approx(1800)


def test_registry_rejects_untrackable_targets_and_negative_limits():
    reg = StructureRegistry()
    with pytest.raises(TypeError):
        reg.register("n", 42)
    with pytest.raises(ValueError):
        reg.register("d", {}, max_size=-1)


# ------------------------------------------------------------- cleanup of everything + GC


def test_cleanup_background_tasks_memory_reports_per_structure_and_dry_run_changes_nothing():
    reg = StructureRegistry()
    stale = reg.register("stale", {}, max_size=100, max_age_minutes=60)
    for i in range(10):
        stale[i] = {"last_attempt": minutes_ago(120 if i < 4 else 1)}
    big = reg.register("big", {i: i for i in range(30)}, max_size=20)
    q = reg.register("events", deque({"last_attempt": minutes_ago(m)} for m in (200, 100, 5)), max_age_minutes=60)

    dry = cleanup_background_tasks_memory(dry_run=True, target_registry=reg, now=NOW.timestamp())
    assert dry.gc is None and dry.dry_run
    assert {r.name: r.removed for r in dry.rows} == {"stale": 4, "big": 10, "events": 2}
    assert (len(stale), len(big), len(q)) == (10, 30, 3)

    real = cleanup_background_tasks_memory(target_registry=reg, now=NOW.timestamp(), gc_generation=0)
    rows = {r.name: (r.before, r.after, r.removed) for r in real.rows}
    assert rows == {"stale": (10, 6, 4), "big": (30, 20, 10), "events": (3, 1, 2)}
    assert real.removed == 16
    assert (len(stale), len(big), len(q)) == (6, 20, 1)
    assert real.gc is not None and real.gc.generation == 0
    assert real.rss_before and real.rss_after and real.rss_after == real.gc.rss_after
    assert dry.rss_before is None and dry.rss_after is None


def test_force_garbage_collection_collects_cycles_and_trims_heap():
    class Node:
        pass

    gc.collect()
    gc.disable()  # so the automatic collector does not take the cycles first
    try:
        for _ in range(1000):
            a, b = Node(), Node()
            a.other, b.other = b, a
        del a, b
        report = force_garbage_collection(2)
    finally:
        gc.enable()
    assert report.collected >= 2000
    assert report.pause_ms >= 0
    assert report.rss_before > 0 and report.rss_after > 0
    assert report.trimmed is True  # glibc Linux here
    with pytest.raises(ValueError):
        force_garbage_collection(3)


# ------------------------------------------------------------- decorator


def test_decorator_on_sync_function_cleans_after_the_body_even_when_it_raises():
    order = []

    @memory_cleanup_decorator(lambda: order.append("cleanup"))
    def work(fail: bool) -> str:
        """Docstring kept."""
        order.append("body")
        if fail:
            raise RuntimeError("boom")
        return "done"

    assert work(False) == "done"
    with pytest.raises(RuntimeError):
        work(True)
    assert order == ["body", "cleanup", "body", "cleanup"]
    assert work.__name__ == "work" and work.__doc__ == "Docstring kept."
    assert not inspect.iscoroutinefunction(work)


async def test_decorator_on_async_function_runs_cleanup_after_the_awaited_body():
    order = []

    async def async_cleanup() -> None:
        order.append("cleanup")

    @memory_cleanup_decorator(async_cleanup)
    async def work(fail: bool) -> int:
        """Async docstring."""
        order.append("body-start")
        await asyncio.sleep(0)
        order.append("body-end")
        if fail:
            raise ValueError("bad")
        return 7

    assert inspect.iscoroutinefunction(work)
    assert work.__name__ == "work" and work.__doc__ == "Async docstring."
    assert await work(False) == 7
    with pytest.raises(ValueError):
        await work(True)
    assert order == ["body-start", "body-end", "cleanup"] * 2


def test_decorator_cleanup_failure_never_hides_the_result():
    def broken() -> None:
        raise OSError("cleanup broke")

    @memory_cleanup_decorator(broken)
    def work() -> int:
        return 1

    assert work() == 1


def test_bounded_dict_reading_a_key_keeps_it_but_membership_tests_do_not():
    """The bound keeps entries in use: d[k] and d.get(k) refresh a key, `k in d` does not."""
    d = BoundedDict(2)
    d["a"], d["b"] = 1, 2
    assert d["a"] == 1  # a is now the most recent
    d["c"] = 3
    assert list(d) == ["a", "c"]
    assert "a" in d
    d["e"] = 5  # a is the least recently used: membership did not refresh it
    assert list(d) == ["c", "e"]


def test_bounded_dict_oldest_timestamp_is_the_least_recently_used_entry():
    d = BoundedDict(3)
    d[1], d[2] = {"last_attempt": 100.0}, {"last_attempt": 200.0}
    assert d.oldest_timestamp() == 100.0
    d[1] = {"last_attempt": 300.0}
    assert d.oldest_timestamp() == 200.0
    assert BoundedDict(1).oldest_timestamp() is None


def test_bounded_dict_update_takes_pairs_and_pickles_with_its_limits():
    import pickle

    d = BoundedDict(2, max_age_minutes=5, timestamp_key="at")
    d.update([(1, "a"), (2, "b"), (3, "c")], four="d")
    assert list(d.items()) == [(3, "c"), ("four", "d")]
    copy = pickle.loads(pickle.dumps(d))
    assert (type(copy), copy.max_size, copy.max_age_minutes, copy.timestamp_key) == (BoundedDict, 2, 5, "at")
    assert list(copy.items()) == list(d.items())


def test_cleanup_global_dict_on_a_bounded_dict_keeps_the_newest_by_timestamp():
    d = BoundedDict(10)
    for i, age in enumerate([50, 5, 40, 1, 30]):
        d[i] = {"last_attempt": minutes_ago(age)}
    assert cleanup_global_dict(d, max_size=2, max_age_minutes=None, now=NOW.timestamp()) == 3
    assert sorted(d) == [1, 3]
    with pytest.raises(ValueError, match=">= 1"):
        d.resize(0)
