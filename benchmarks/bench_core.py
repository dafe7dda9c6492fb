"""In-process figures: the monitor tick, the bounded dict, cleanup_global_dict."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time

import psutil

from benchmarks._harness import Result, interleaved, per_call
from polly.alert_engine import AlertEngine
from polly.alert_rules import evaluate_rules
from polly.alert_store import AlertStore
from polly.alerts import Thresholds
from polly.config import Settings, load_settings
from polly.container import ContainerReader
from polly.enhanced_database import Database
from polly.heap_types import TypeGrowth
from polly.kernel_files import KernelFile
from polly.memory_optimizer import MemoryMonitor
from polly.memory_utils import BoundedDict, StructureRegistry, cleanup_global_dict
from polly.run_journal import RunJournal
from polly.samples import MemorySample
from polly.trend import LeakWatch, Trend
from tests.clocks import FakeClock

CORE_SHARE_BUDGET = 0.0001  # 0.01 % of one core
GROWN_RSS = 512 * 1024 * 1024
PAGE = 4096


def monitor_tick(settings: Settings) -> list[Result]:
    registry = StructureRegistry()
    for i in range(20):
        d = registry.bounded_dict(f"structure_{i}", max_size=1000, max_age_minutes=60)
        d.update({k: {"last_attempt": time.time()} for k in range(100)})
    monitor = MemoryMonitor(  # as the memory layer makes it: the files every tick reads kept open
        settings,
        structures=registry,
        clock=FakeClock(step_s=settings.memory_check_interval_seconds),
        keep_files_open=True,
    )
    engine = AlertEngine(Thresholds.from_settings(settings))
    watch = LeakWatch(settings.alert_leak_fast_window_minutes * 60, settings.alert_leak_slow_window_minutes * 60)
    for _ in range(150):  # full trend and leak windows first
        monitor.sample()
    proc = psutil.Process()

    def tick() -> None:
        sample = monitor.sample()
        monitor.trend()  # as the tick computes it for /mem stats and the metrics
        leak = watch.windows(monitor.history, None, min_mib_per_hour=engine.thresholds.leak_min_mib_per_hour)
        engine.evaluate(evaluate_rules(sample, leak, engine.thresholds), sample.at)

    calls = 300
    median, base, *_ = interleaved(lambda: per_call(tick, calls), lambda: per_call(proc.memory_full_info, calls))
    ratio = median / base
    share = median / settings.memory_check_interval_seconds
    status = KernelFile("/proc/self/status")  # kept open, as the tick reads it
    floor, floor_base, *_ = interleaved(
        lambda: per_call(status.read, calls), lambda: per_call(proc.memory_full_info, calls)
    )
    # Does the tick grow with the process? Against the status read (constant cost) as the
    # baseline, before and after 512 MiB more RSS (touched pages): a tick walking the mappings would.
    before, before_floor, *_ = interleaved(lambda: per_call(tick, calls), lambda: per_call(status.read, calls))
    grown = bytearray(GROWN_RSS)
    grown[::PAGE] = b"x" * len(range(0, GROWN_RSS, PAGE))
    after, after_floor, *_ = interleaved(lambda: per_call(tick, calls), lambda: per_call(status.read, calls))
    full_after = per_call(proc.memory_full_info, 30)
    del grown
    growth = (after / after_floor) / (before / before_floor)
    reader = ContainerReader(keep_open=True)
    signals, signals_base, *_ = interleaved(
        lambda: per_call(reader.read, calls), lambda: per_call(proc.memory_full_info, calls)
    )
    where = reader.read()
    record, record_base = run_record_cost(monitor.sample(), proc)
    return [
        Result(
            "run record per tick (the post-mortem's note, SQLite file)",
            record,
            record_base,
            "s",
            "reported",
            True,
            record / record_base,
            "one upsert of ~1 KiB of JSON per tick, so a bot killed at any moment leaves its last figures",
        ),
        Result(
            "container signals per tick (cgroup files + PSI), part of the tick",
            signals,
            signals_base,
            "s",
            "reported",
            True,
            signals / signals_base,
            f"cgroup v{where.version} here, pressure from the {where.pressure.source if where.pressure else 'nowhere'}"
            if where.version
            else "no memory cgroup here",
        ),
        Result(
            "monitor tick (sample + rules), 20 structures",
            median,
            base,
            "s",
            "≤ 1x memory_full_info()",
            ratio <= 1,
            ratio,
            "baseline: psutil.Process().memory_full_info() alone",
        ),
        Result(
            "monitor tick's floor: reading /proc/self/status alone",
            floor,
            floor_base,
            "s",
            "reported",
            True,
            floor / floor_base,
            "the one file a tick must read",
        ),
        Result(
            "monitor tick with 512 MiB more RSS, against the status read",
            growth,
            1.0,
            "x",
            "≤ 1.3x the tick before (does not grow with RSS)",
            growth <= 1.3,
            growth,
            f"{before * 1e6:.0f} µs before, {after * 1e6:.0f} µs after; memory_full_info() after: "
            f"{full_after * 1e6:.0f} µs",
        ),
        Result(
            "monitor tick share of one core at the default interval",
            share * 100,
            CORE_SHARE_BUDGET * 100,
            "%",
            "≤ 0.01 % of one core",
            share <= CORE_SHARE_BUDGET,
            share / CORE_SHARE_BUDGET,
            f"{median * 1e3:.2f} ms every {settings.memory_check_interval_seconds:g} s",
        ),
    ]


def run_record_cost(sample: MemorySample, proc: psutil.Process) -> tuple[float, float]:
    """Seconds per `RunJournal.note` on a SQLite file, and memory_full_info() measured alongside."""
    with tempfile.TemporaryDirectory(prefix="polly-run-record-") as folder:
        settings = load_settings(env_file=None, environ={}, database_url=f"sqlite+aiosqlite:///{folder}/r.db")
        loop = asyncio.new_event_loop()
        db = Database(settings)
        try:
            loop.run_until_complete(db.create_tables())
            journal = RunJournal(AlertStore(db, 100, "bench"), "bench", lambda: sample.at)
            loop.run_until_complete(journal.begin(sample.container, 95, 60))
            trend = Trend(1.0, 60, 3600, None)
            growing = tuple(TypeGrowth(f"module.Type{i}", 1000, 1000 + i) for i in range(5))

            def note() -> None:
                loop.run_until_complete(journal.note(sample, trend, growing, ()))

            median, base, *_ = interleaved(lambda: per_call(note, 100), lambda: per_call(proc.memory_full_info, 100))
            return median, base
        finally:
            loop.run_until_complete(db.dispose())
            loop.close()


BOUNDED_WORKLOADS = (
    # (name, keys, budget as a ratio to a plain dict)
    ("random keys: 1,000,000 writes over 100,000 keys", "random", 2.0),
    ("sequential keys: 300,000 writes of i % 30,000", "sequential", 4.0),
)


def _bounded_keys(kind: str) -> list[int]:
    if kind == "random":
        rng = random.Random(7)
        return [rng.randrange(100_000) for _ in range(1_000_000)]
    return [i % 30_000 for i in range(300_000)]


def bounded_dict() -> list[Result]:
    results = []
    for name, kind, budget in BOUNDED_WORKLOADS:
        keys = _bounded_keys(kind)

        def fill(target: dict, keys: list[int] = keys) -> float:
            start = time.perf_counter()
            for k in keys:
                target[k] = k
            return time.perf_counter() - start

        median, base, *_ = interleaved(lambda: fill(BoundedDict(1000)), lambda: fill({}), repeats=7)
        # The bound, checked after every write (outside the timed runs).
        peak, check = 0, BoundedDict(1000)
        for k in keys:
            check[k] = k
            peak = max(peak, len(check))
        ratio = median / base
        results.append(
            Result(
                f"bounded dict, limit 1,000, {name}",
                median,
                base,
                "s",
                f"≤ {budget:g}x plain dict; size ≤ 1,000",
                ratio <= budget and peak <= 1000,
                ratio,
                f"largest size seen {peak:,}",
            )
        )
    return results


def cleanup_million() -> list[Result]:
    rng = random.Random(11)
    now = time.time()
    stamps = [now - rng.uniform(0, 3000) for _ in range(1_000_000)]  # updated in place: random order
    template = {i: {"last_attempt": ts} for i, ts in enumerate(stamps)}

    def cleanup_run() -> float:
        target = dict(template)
        start = time.perf_counter()
        removed = cleanup_global_dict(target, max_size=1000, max_age_minutes=None, now=now)
        elapsed = time.perf_counter() - start
        assert removed == 999_000 and len(target) == 1000
        return elapsed

    def sort_run() -> float:
        start = time.perf_counter()
        sorted(stamps)
        return time.perf_counter() - start

    median, base, *_ = interleaved(cleanup_run, sort_run, repeats=5)
    ratio = median / base
    return [
        Result(
            "cleanup_global_dict: 1,000,000 timestamped entries to 1,000",
            median,
            base,
            "s",
            "≤ 3x sorted() of the timestamps",
            ratio <= 3,
            ratio,
        )
    ]
