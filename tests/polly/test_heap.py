"""Heap analysis in the core: type counts and growth, owned sizes, reference chains."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections import Counter, deque

from polly.alert_engine import AlertEngine
from polly.alerts import Thresholds
from polly.bounded import BoundedDict
from polly.heap_refs import find_chain, safe_key
from polly.heap_sizes import deep_size, estimate_container_bytes
from polly.heap_types import count_types_in_pieces, instances_off_loop, type_counts, type_growth
from polly.memory_optimizer import MemoryMonitor
from polly.monitor_cycle import MonitorCycle
from polly.registry import StructureRegistry
from tests.clocks import FakeClock
from tests.settings import make_settings


class Widget:
    def __init__(self) -> None:
        self.payload = bytes(1000)
        self.neighbour: Widget | None = None


def test_type_counts_see_new_objects_and_growth_ranks_them():
    before = type_counts()
    held = [Widget() for _ in range(5000)]
    after = type_counts()
    growth = type_growth(before, after)
    assert growth[0].name == f"{__name__}.Widget" and growth[0].change == 5000
    assert growth[0].short() == "Widget +5,000"
    assert len(held) == 5000


async def test_types_are_counted_in_pieces_between_which_the_loop_runs_the_same_as_in_one_pass(monkeypatch):
    """A checkpoint's count runs on the loop piece by piece, and the loop runs other tasks between
    two pieces; what it counts is what one pass counts. The instances are searched in the worker
    thread."""
    import asyncio
    import threading

    from polly import heap_types

    held = [Widget() for _ in range(25_000)]
    objects = gc.get_objects()
    pieces: list[tuple[int, int]] = []  # (objects in the piece, the other task's beats so far)
    beats = 0
    real_update = Counter.update

    def noted_update(self, iterable=None, /, **kwds):
        if iterable is None:  # Counter() itself
            return real_update(self, **kwds)
        items = list(iterable)
        pieces.append((len(items), beats))
        return real_update(self, items, **kwds)

    async def beating() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(heap_types, "PIECE", 10_000)
    monkeypatch.setattr(Counter, "update", noted_update)
    other = asyncio.create_task(beating())
    await asyncio.sleep(0)
    try:
        counted = await count_types_in_pieces(objects)
    finally:
        other.cancel()
        monkeypatch.undo()
    assert counted == Counter(map(type, objects))
    assert counted[Widget] == 25_000
    assert len(pieces) == -(-len(objects) // 10_000) and max(n for n, _ in pieces) == 10_000
    assert [b for _, b in pieces] == sorted({b for _, b in pieces}), "the other task ran between every two pieces"
    threads: set[threading.Thread] = set()
    real_pick = heap_types.pick

    def noted_pick(objects, kinds):
        threads.add(threading.current_thread())
        return real_pick(objects, kinds)

    monkeypatch.setattr(heap_types, "pick", noted_pick)
    found = await instances_off_loop(objects, Widget)
    assert len(found) == 25_000 and all(type(w) is Widget for w in found)
    assert threads and threading.main_thread() not in threads
    del held, objects, found


def test_an_object_owns_its_attributes_but_not_the_objects_it_points_to():
    alone = Widget()
    linked = Widget()
    linked.neighbour = Widget()
    assert deep_size(alone) >= 1000 + sys.getsizeof(alone)
    assert abs(deep_size(linked) - deep_size(alone)) < 100  # the neighbour is not counted


def test_a_structure_estimate_scales_with_its_entries_and_sees_inside_a_bounded_dict():
    small, large = BoundedDict(10_000), BoundedDict(10_000)
    for i in range(100):
        small[i] = {"payload": bytes(500)}
    for i in range(1000):
        large[i] = {"payload": bytes(500)}
    estimate_small, estimate_large = estimate_container_bytes(small), estimate_container_bytes(large)
    assert 100 * 500 <= estimate_small < 100 * 1500
    assert 9 < estimate_large / estimate_small < 11


async def test_sizes_are_estimated_at_the_first_tick_then_only_every_few_minutes(tmp_path):
    settings = make_settings(tmp_path, memory_size_estimate_minutes=5)
    structures = StructureRegistry()
    cache = structures.bounded_dict("cache", max_size=1000)
    cache.update((i, {"payload": bytes(1000)}) for i in range(100))
    clock = FakeClock(step_s=0)
    monitor = MemoryMonitor(settings, structures=structures, clock=clock)
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.default()), None, structures)
    first = (await cycle.tick()).sample.structures[0].estimated_bytes
    assert first is not None and first > 100_000
    cache.update((i, {"payload": bytes(1000)}) for i in range(100, 200))
    clock.advance(60)
    assert (await cycle.tick()).sample.structures[0].estimated_bytes == first  # not due yet
    clock.advance(5 * 60)
    assert (await cycle.tick()).sample.structures[0].estimated_bytes > first * 1.5


async def test_a_chain_names_attributes_and_containers_and_hides_keys_that_could_be_data():
    class Bot:
        pass

    bot = Bot()
    bot.state = Bot()
    bot.state.by_user = {"someone@example.com": deque([Widget()])}
    target = bot.state.by_user["someone@example.com"][0]
    chain = await find_chain(target, named_roots={"bot": bot}, deadline=time.perf_counter() + 5)
    assert chain.text() == "bot → state → by_user (dict) → [<str key>] (deque) → Widget"
    assert safe_key("guild_id") == "guild_id" and safe_key(12) == "12" and safe_key("a b") == "<str key>"


async def test_a_chain_search_lets_the_bots_due_timers_run_between_its_scans(monkeypatch):
    """Each level is one heap scan (a block); between two, a timer already due must run first.
    With sleep(0) it would not: the search's next step is queued ahead of expired timers."""
    from polly import heap_refs

    loop = asyncio.get_running_loop()
    timers_run: list[int] = []
    scans_before_their_timer: list[int] = []
    real_scan = gc.get_referrers

    def scan(*objects):
        scans = len(timers_run) + len(scans_before_their_timer)
        if len(timers_run) < scans:  # the timer set at the previous scan has not run yet
            scans_before_their_timer.append(scans)
        found = real_scan(*objects)
        loop.call_later(0, timers_run.append, 1)  # due at once: the bot's next timer
        return found

    holder = {"a": {"b": {"c": Widget()}}}
    monkeypatch.setattr(heap_refs.gc, "get_referrers", scan)
    chain = await find_chain(holder["a"]["b"]["c"], named_roots={"holder": holder}, deadline=time.perf_counter() + 5)
    monkeypatch.undo()
    assert chain.found and chain.levels == 3 and len(timers_run) >= 2  # the last runs after the search
    assert scans_before_their_timer == []


async def test_a_chain_search_past_its_deadline_says_so():
    chain = await find_chain(Widget(), named_roots={}, deadline=time.perf_counter() - 1)
    assert chain.timed_out and not chain.found


async def test_an_object_in_a_tracked_bounded_dict_is_found_although_the_gc_cannot_see_inside():
    structures = StructureRegistry()
    holder = structures.bounded_dict("widgets", max_size=10)
    holder[1] = Widget()
    chain = await find_chain(
        holder[1],
        named_roots={},
        structures=[(t.name, t.target) for t in structures],
        deadline=time.perf_counter() + 5,
    )
    assert chain.text() == "tracked structure widgets → Widget"
    await asyncio.sleep(0)


def test_a_call_path_starts_at_the_innermost_frame_of_our_own_code():
    import tracemalloc

    from polly.allocation_trace import PROJECT_ROOT, call_path

    site = "/venv/lib/python3.11/site-packages/discord/state.py"
    # raw tracemalloc frames are most recent first
    raw = (
        (site, 685),
        (str(PROJECT_ROOT / "cogs" / "polls.py"), 40),
        (str(PROJECT_ROOT / "bot" / "app.py"), 12),
        ("/usr/lib/python3.11/asyncio/events.py", 80),
    )
    assert call_path(tracemalloc.Traceback(raw)) == (
        "cogs/polls.py:40 ← bot/app.py:12 ← asyncio/events.py:80 (allocated in discord/state.py:685)"
    )
