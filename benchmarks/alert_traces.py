"""RSS traces of a healthy bot (and of leaking ones) and their replay through the real monitor.

A trace is one RSS value per check interval (60 s), in MiB. What a healthy bot does, scaled to
its limit (steady RSS at half the limit):

- **warm-up** after every start: RSS starts at 65 % of its steady level and approaches it
  exponentially (time constant 12 min), as caches and pools fill;
- **GC saw-tooth**: a 1 % ramp over 15 minutes (the cleanup interval), then the drop when
  garbage is collected and the heap trimmed;
- **noise**: 0.3 % per sample, and now and then (1 sample in 240) a spike of 4 % for 1-3 minutes;
- **a cache step** once a day, 4-20 h after the start: +6 % within 5 minutes, kept until restart;
- **slow benign drift**: +0.2 MiB/h (more guilds, more users);
- **daily restarts**: a new process every 24 h ± 30 min, whose RSS starts over.

A leak adds `rate` MiB/h from its onset until the next restart.

The container's signals of a healthy bot (drawn from their own random stream, so the RSS traces
stay what they were): memory pressure (PSI `some` avg60) near 0 with a host burst now and then
(1 in 180 checks, up to 15 % for 1-2 checks: a backup, a neighbour's page-cache churn), and the
cgroup's memory.max hit a few times when page cache reaches the limit (1 in 240 checks, 1-4 hits).
`with_pressure` and `with_throttling` add the real thing.

The replay runs the real `MonitorCycle` (the same sample, history, automatic checkpoints in a
real SQLite file, rules, alert engine and alert store as the bot) with the trace as the process's
RSS and a simulated clock; a restart builds everything anew on the same database file and
restores the firing alerts from it, as the bot's start does.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from polly.alert_engine import AlertEngine
from polly.alert_store import AlertStore
from polly.alerts import AlertTransition, Thresholds
from polly.config import Settings, load_settings
from polly.container import ContainerMemory, Pressure
from polly.enhanced_database import Database
from polly.formatting import MIB
from polly.memory_limit import CgroupReader
from polly.memory_optimizer import MemoryMonitor
from polly.monitor_cycle import MonitorCycle
from polly.process_stats import HostMemory, ProcessMemory
from polly.registry import StructureRegistry

MINUTES_PER_DAY = 24 * 60
START = datetime(2026, 1, 1, tzinfo=UTC)
STEADY_SHARE = 0.5


@dataclass(frozen=True)
class Trace:
    rss_mib: tuple[float, ...]  # one per minute
    restarts: frozenset[int]  # minutes at which a new process starts (0 included)
    limit_mib: int
    leak_onset: int | None = None
    leak_rate: float = 0.0
    pressure: tuple[float, ...] = ()  # PSI some avg60 per minute, percent ("": none)
    throttle_hits: tuple[int, ...] = ()  # memory.high/max hits per minute
    incident_onset: int | None = None  # where with_pressure / with_throttling begins


def healthy_signals(minutes: int, seed: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
    rng = random.Random(seed ^ 0x5EED)
    pressure, hits = [], []
    burst = 0.0
    for _ in range(minutes):
        burst = rng.uniform(5, 15) if rng.random() < 1 / 180 else burst * 0.3  # avg60 decays in a minute or two
        pressure.append(max(0.0, rng.gauss(0.05, 0.05)) + burst)
        hits.append(rng.randint(1, 4) if rng.random() < 1 / 240 else 0)
    return tuple(pressure), tuple(hits)


def with_pressure(trace: Trace, percent: float, onset_min: int, minutes: int = 30) -> Trace:
    """Sustained memory pressure (`percent` avg60, ±20 %) for `minutes` from `onset_min`."""
    rng = random.Random(onset_min)
    pressure = list(trace.pressure)
    for minute in range(onset_min, min(len(pressure), onset_min + minutes)):
        pressure[minute] = percent * rng.uniform(0.8, 1.2)
    return replace(trace, pressure=tuple(pressure), incident_onset=onset_min)


def with_throttling(trace: Trace, hits_per_minute: int, onset_min: int, minutes: int = 20) -> Trace:
    """The container's memory.high hit `hits_per_minute` times a minute for `minutes`."""
    hits = list(trace.throttle_hits)
    for minute in range(onset_min, min(len(hits), onset_min + minutes)):
        hits[minute] += hits_per_minute
    return replace(trace, throttle_hits=tuple(hits), incident_onset=onset_min)


def healthy_trace(limit_mib: int, days: float, seed: int, step_after_h: float | None = None) -> Trace:
    """A healthy bot's trace; its daily cache step comes `step_after_h` after each start (random
    between 4 and 20 h when None)."""
    rng = random.Random(seed)
    steady = limit_mib * STEADY_SHARE
    minutes = int(days * MINUTES_PER_DAY)
    restarts = [0]
    while restarts[-1] + MINUTES_PER_DAY + 30 < minutes:
        restarts.append(restarts[-1] + MINUTES_PER_DAY + rng.randint(-30, 30))
    rss: list[float] = []
    started, step_at, spike_left, spike = 0, 0, 0, 0.0
    for minute in range(minutes):
        if minute in restarts:
            offset = rng.randint(4 * 60, 20 * 60)
            started, step_at = minute, minute + (offset if step_after_h is None else int(step_after_h * 60))
        age = minute - started
        value = steady * (1 - 0.35 * math.exp(-age / 12))
        value += steady * 0.01 * ((age % 15) / 15)  # saw-tooth
        value += steady * 0.06 * min(1.0, max(0.0, (minute - step_at) / 5))  # the daily cache step
        value += 0.2 * age / 60
        if spike_left == 0 and rng.random() < 1 / 240:
            spike_left, spike = rng.randint(1, 3), steady * 0.04
        if spike_left:
            value += spike
            spike_left -= 1
        rss.append(value + rng.gauss(0, steady * 0.003))
    pressure, hits = healthy_signals(minutes, seed)
    return Trace(tuple(rss), frozenset(restarts), limit_mib, pressure=pressure, throttle_hits=hits)


def with_leak(trace: Trace, rate_mib_per_hour: float, hours_after_start: float = 3.0) -> Trace:
    """The trace with a leak starting `hours_after_start` into its second process, cut 6 h later."""
    second = sorted(trace.restarts)[1]
    onset = second + int(hours_after_start * 60)
    end = min(len(trace.rss_mib), onset + 6 * 60)
    leaked = [
        value + (rate_mib_per_hour * (minute - onset) / 60 if minute >= onset else 0.0)
        for minute, value in enumerate(trace.rss_mib[:end])
    ]
    return Trace(
        tuple(leaked),
        frozenset(r for r in trace.restarts if r < end),
        trace.limit_mib,
        onset,
        rate_mib_per_hour,
        trace.pressure[:end],
        trace.throttle_hits[:end],
    )


def _leaked(trace: Trace, hours_after_start: float, added: Callable[[int], float], rate: float) -> Trace:
    """The trace with `added(minutes since the onset)` MiB on top from the onset (in its second
    process), cut 6 h later."""
    second = sorted(trace.restarts)[1]
    onset = second + int(hours_after_start * 60)
    end = min(len(trace.rss_mib), onset + 6 * 60)
    rss = tuple(v + (added(m - onset) if m >= onset else 0.0) for m, v in enumerate(trace.rss_mib[:end]))
    restarts = frozenset(r for r in trace.restarts if r < end)
    return Trace(rss, restarts, trace.limit_mib, onset, rate, trace.pressure[:end], trace.throttle_hits[:end])


def with_stepped_leak(trace: Trace, step_mib: float, every_min: int, hours_after_start: float = 3.0) -> Trace:
    """A leak in steps: `step_mib` at once every `every_min` minutes, flat in between (a cache that
    never evicts, filled by bursts)."""
    return _leaked(trace, hours_after_start, lambda m: step_mib * (m // every_min + 1), step_mib * 60 / every_min)


def with_sawtooth_leak(
    trace: Trace, rate_mib_per_hour: float, period_min: int, drop_share: float, hours_after_start: float = 3.0
) -> Trace:
    """A leak under a saw-tooth: rising at 2x `rate`, then every `period_min` minutes a cleanup gives
    back `drop_share` of what the period added (net `rate` when drop_share is 0.5)."""

    def added(m: int) -> float:
        period, into = divmod(m, period_min)
        per_period = 2 * rate_mib_per_hour * period_min / 60
        return period * per_period * (1 - drop_share) + 2 * rate_mib_per_hour * into / 60

    return _leaked(trace, hours_after_start, added, rate_mib_per_hour * 2 * (1 - drop_share))


def with_stopping_leak(trace: Trace, rate_mib_per_hour: float, lasts_min: int, hours_after_start: float = 3.0) -> Trace:
    """A leak that stops after `lasts_min` minutes (fixed, or its cache finally bounded)."""
    return _leaked(trace, hours_after_start, lambda m: rate_mib_per_hour * min(m, lasts_min) / 60, rate_mib_per_hour)


class TraceProcess:
    """A process whose RSS is whatever the trace says now."""

    def __init__(self) -> None:
        self.rss = 0

    def memory_info(self) -> ProcessMemory:
        return ProcessMemory(self.rss, self.rss * 2)

    def memory_full_info(self) -> ProcessMemory:
        return ProcessMemory(self.rss, self.rss * 2, self.rss, self.rss, 0)

    def num_threads(self) -> int:
        return 2

    def num_fds(self) -> int:
        return 12

    def create_time(self) -> float:
        return START.timestamp()

    def host_memory(self) -> HostMemory:
        return HostMemory(64 * 1024 * MIB, 32 * 1024 * MIB)

    def oneshot(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()


class TraceContainer:
    """The container as the trace says: a cgroup v2 whose memory.max is the limit, with the trace's
    pressure and its memory.high/max hits counted as the kernel counts them (cumulatively)."""

    def __init__(self, limit_mib: int) -> None:
        self.limit = limit_mib * MIB
        self.usage = 0
        self.hits = 0
        self.pressure = 0.0

    def read(self) -> ContainerMemory:
        events = {"low": 0, "high": self.hits, "max": 0, "oom": 0, "oom_kill": 0}
        pressure = Pressure("cgroup", self.pressure, self.pressure, 0.0, 0.0)
        return ContainerMemory(2, "/trace", self.usage, self.limit, None, events, {}, self.usage, pressure)

    def close(self) -> None:
        """Nothing is kept open."""


class SimulatedClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Fired:
    minute: int
    transition: AlertTransition


def replay_settings(folder: Path, limit_mib: int, **overrides: object) -> Settings:
    return load_settings(
        env_file=None,
        environ={},
        database_url=f"sqlite+aiosqlite:///{folder / 'replay.db'}",
        memory_limit_mb=limit_mib,
        **overrides,
    )


@contextlib.asynccontextmanager
async def _process_run(
    settings: Settings, process: TraceProcess, clock: SimulatedClock, container: TraceContainer
) -> AsyncIterator[MonitorCycle]:
    """One bot process: database, monitor, engine and cycle, built as the bot's start builds them."""
    db = Database(settings)
    await db.create_tables()
    structures = StructureRegistry()
    empty = Path("/nonexistent-cgroup")
    monitor = MemoryMonitor(
        settings,
        db,
        structures=structures,
        cgroup=CgroupReader(empty, empty),
        container=container,
        process=process,
        clock=clock,
    )
    await monitor.refresh_checkpoint_count()
    cycle = MonitorCycle(
        settings,
        monitor,
        AlertEngine(Thresholds.from_settings(settings)),
        AlertStore(db, settings.alert_history_size),
        structures,
    )
    await cycle.restore_firing()
    try:
        yield cycle
    finally:
        await db.dispose()


async def replay(trace: Trace, folder: Path, **overrides: object) -> list[Fired]:
    """Every alert transition the real monitor produced over the trace, with its minute."""
    settings = replay_settings(folder, trace.limit_mib, **overrides)
    process, clock, container = TraceProcess(), SimulatedClock(), TraceContainer(trace.limit_mib)
    out: list[Fired] = []
    restarts = sorted(trace.restarts)
    for run, first in enumerate(restarts):
        last = restarts[run + 1] if run + 1 < len(restarts) else len(trace.rss_mib)
        clock.now = START + timedelta(minutes=first)
        async with _process_run(settings, process, clock, container) as cycle:
            for minute in range(first, last):
                clock.now = START + timedelta(minutes=minute)
                process.rss = int(trace.rss_mib[minute] * MIB)
                container.usage = process.rss
                container.pressure = trace.pressure[minute] if trace.pressure else 0.0
                container.hits += trace.throttle_hits[minute] if trace.throttle_hits else 0
                result = await cycle.tick()
                out.extend(Fired(minute, event.transition) for event in result.events)
    return out
