"""Prometheus text exposition (format 0.0.4) of the monitor's latest sample; no measuring of its own.

Labels never carry guild, user or channel ids: only the structure name, the rule, the GC
generation, and `polly_instance` (METRICS_INSTANCE) so a fleet of shards can be told apart.
Prometheus adds its own `instance` label per scrape target, hence the different name.

Why not prometheus_client: it added 0.95 MiB of RSS to the running bot for what is a few lines of
text; the exposition below is checked against its reference parser and `promtool` in the tests.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from polly.alerts import Rule
from polly.decorators import profile_snapshot
from polly.monitor_cycle import MonitorCycle
from polly.process_stats import current_process
from polly.samples import MemorySample
from polly.shards import ShardState

if TYPE_CHECKING:
    from polly.process_stats import ProcessStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INSTANCE_LABEL = "polly_instance"

POOL_GAUGES = {
    "pool_size": "Configured pool size",
    "max_overflow": "Configured maximum overflow",
    "checked_out": "Connections checked out now",
    "checked_in": "Idle connections in the pool now",
    "overflow": "Overflow connections in use now",
    "peak_checked_out": "Most connections checked out at once since start",
}
POOL_COUNTERS = {
    "checkouts": "Connection checkouts",
    "checkins": "Connection checkins",
    "connects": "New database connections",
    "overflow_checkouts": "Checkouts that needed an overflow connection",
    "timeouts": "Checkouts that gave up after DB_POOL_TIMEOUT",
    "invalidations": "Connections invalidated",
}

Sample = tuple[Mapping[str, str], float]


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(text: str, *, quotes: bool = True) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quotes else text


def family(name: str, kind: str, doc: str, samples: Iterable[Sample]) -> str:
    """One metric family: HELP, TYPE and its samples (counters get the `_total` suffix)."""
    if kind == "counter":
        name += "_total"
    lines = [f"# HELP {name} {_escape(doc, quotes=False)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{inner}}} {_value(value)}" if inner else f"{name} {_value(value)}")
    return "\n".join(lines) + "\n"


class MetricsRenderer:
    """Renders the cycle's latest sample, alerts and health; process metrics like the standard
    process collector's (`process_*`)."""

    def __init__(self, cycle: MonitorCycle, instance: str, process: ProcessStats | None = None) -> None:
        self.cycle = cycle
        self.instance = instance
        self.process = process or current_process()
        self._started = self.process.create_time()
        self._max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

        self._cached_key: tuple[object, ...] | None = None
        self._cached: bytes = b""

    def _one(self, value: float, **labels: str) -> list[Sample]:
        return [({INSTANCE_LABEL: self.instance, **labels}, value)]

    def render(self) -> bytes:
        """The exposition: rendered once per sample (alerts and monitor figures change only at a
        tick), so a thousand concurrent scrapes cost one rendering and a thousand byte copies.
        Only the CPU time is read per scrape, as the standard process collector does."""
        monitor, health = self.cycle.monitor, self.cycle.health
        sample = monitor.with_details(monitor.latest or monitor.sample())
        key = (sample, health.ticks, health.errors)
        cached = self._cached_key
        if cached is None or cached[0] is not sample or cached[1:] != key[1:]:
            self._cached = "".join(self._families(sample)).encode()
            self._cached_key = key
        cpu = os.times()  # this process's user and system CPU seconds, as psutil's cpu_times()
        return (
            self._cached
            + family(
                "process_cpu_seconds",
                "counter",
                "Total user and system CPU time in seconds.",
                [({}, cpu.user + cpu.system)],
            ).encode()
        )

    def _families(self, s: MemorySample) -> Iterator[str]:
        trend = self.cycle.trend()
        yield family("polly_memory_rss_bytes", "gauge", "Resident set size of the bot process", self._one(s.rss))
        for name, doc, value in (
            ("polly_memory_uss_bytes", "Unique set size (memory freed if it exited)", s.uss),
            ("polly_memory_swap_bytes", "Swapped-out memory of the bot process", s.swap),
        ):
            if value is not None:
                yield family(name, "gauge", doc, self._one(value))
        if s.breakdown is not None:
            parts = [p for p in s.breakdown.parts if p.bytes is not None]  # an unreadable part is absent
            yield family(
                "polly_memory_breakdown_bytes",
                "gauge",
                "Where the RSS is: python_objects, python_free, malloc_used, malloc_free, file_mapped, other",
                [({INSTANCE_LABEL: self.instance, "part": p.name}, p.bytes or 0) for p in parts],
            )
        yield from self._limits(s)
        yield family(
            "polly_memory_limit_used_percent", "gauge", "RSS as a percent of the limit", self._one(s.percent_of_limit)
        )
        if trend.slope_mib_per_hour is not None:
            yield family(
                "polly_memory_rss_trend_mib_per_hour",
                "gauge",
                "Slope of RSS over the trend window",
                self._one(trend.slope_mib_per_hour),
            )
        if s.loop_lag_ms is not None:
            yield family(
                "polly_event_loop_lag_seconds",
                "gauge",
                "Event-loop lag at the last sample",
                self._one(s.loop_lag_ms / 1000),
            )
        yield from self._container(s)
        yield from self._structures(s)
        yield from self._caches(s)
        yield from self._bot(s)
        yield from self._pool(s)
        runs = [
            sample
            for generation, n in enumerate(s.gc_collections)
            for sample in self._one(n, generation=str(generation))
        ]
        yield family("polly_gc_collections", "counter", "GC runs per generation", runs)
        yield from self._monitor()
        yield from self._profiles()
        yield from self._process(s)

    def _limits(self, s: MemorySample) -> Iterator[str]:
        """The effective limit (what "% of the limit" means), and the container's two ceilings:
        memory.max (v1: limit_in_bytes), beyond which the OOM killer acts, and memory.high (v1: the
        soft limit), beyond which the kernel throttles. Select kind="effective" for the first."""
        rows = self._one(s.limit, kind="effective", source=s.limit_source)
        c = s.container
        if c is not None and c.version is not None:
            names = ("memory.max", "memory.high") if c.version == 2 else ("limit_in_bytes", "soft_limit_in_bytes")
            for kind, name, value in (("max", names[0], c.limit_max), ("high", names[1], c.limit_high)):
                if value is not None:
                    rows += self._one(value, kind=kind, source=f"cgroup v{c.version} {name}")
        yield family("polly_memory_limit_bytes", "gauge", "Memory limits: effective, and the cgroup's", rows)

    def _container(self, s: MemorySample) -> Iterator[str]:
        """The memory cgroup and pressure; what this host cannot read is absent, never 0."""
        c = s.container
        if c is None:
            return
        if c.events:
            rows = [row for event, n in sorted(c.events.items()) for row in self._one(n, event=event)]
            doc = "memory.events counters of the bot's cgroup (v1: failcnt as max, oom_control's oom_kill)"
            yield family("polly_cgroup_memory_events", "counter", doc, rows)
        if c.usage is not None:
            yield family("polly_cgroup_memory_usage_bytes", "gauge", "Memory charged to the cgroup", self._one(c.usage))
        if c.working_set is not None:
            doc = "The cgroup's usage minus inactive file pages (as kubelet computes it)"
            yield family("polly_cgroup_memory_working_set_bytes", "gauge", doc, self._one(c.working_set))
        if c.stat:
            rows = [row for part, n in c.stat.items() for row in self._one(n, part=part)]
            yield family("polly_cgroup_memory_stat_bytes", "gauge", "The cgroup's memory by kind (memory.stat)", rows)
        p = c.pressure
        if p is not None:
            rows = [
                row
                for kind, window, value in (
                    ("some", "10s", p.some_avg10),
                    ("some", "60s", p.some_avg60),
                    ("full", "10s", p.full_avg10),
                    ("full", "60s", p.full_avg60),
                )
                if value is not None
                for row in self._one(value, kind=kind, window=window, source=p.source)
            ]
            doc = "Share of time tasks waited for memory (PSI avg10/avg60; source: the cgroup's or the host's)"
            yield family("polly_memory_pressure_percent", "gauge", doc, rows)

    def _previous_run(self) -> Iterator[str]:
        runs = self.cycle.runs
        if runs is None or not runs.judged:
            return
        from polly.post_mortem import VERDICT_LABELS  # the report's code: loaded with the first scrape

        verdict = runs.previous.verdict.value if runs.previous is not None else "none"
        doc = f"1 when the previous run of this instance did not stop cleanly; verdict: {', '.join(VERDICT_LABELS)}"
        yield family("polly_previous_run_unclean", "gauge", doc, self._one(float(verdict != "none"), verdict=verdict))

    def _structures(self, s: MemorySample) -> Iterator[str]:
        def rows(attr: str) -> list[Sample]:
            return [
                ({INSTANCE_LABEL: self.instance, "structure": st.name}, value)
                for st in s.structures
                if not st.failing and (value := getattr(st, attr)) is not None and (attr != "limit" or value)
            ]

        yield family("polly_tracked_structure_size", "gauge", "Entries in a tracked structure", rows("size"))
        yield family("polly_tracked_structure_limit", "gauge", "Size limit of a tracked structure", rows("limit"))
        yield family(
            "polly_tracked_structure_oldest_age_seconds",
            "gauge",
            "Age of the oldest entry, where known",
            rows("oldest_age_s"),
        )
        failing = [
            ({INSTANCE_LABEL: self.instance, "structure": st.name}, float(bool(st.failing))) for st in s.structures
        ]
        yield family("polly_tracked_structure_failing", "gauge", "1 while a structure cannot report its size", failing)
        yield family(
            "polly_tracked_structure_estimated_bytes",
            "gauge",
            "Estimated size of a tracked structure and its entries (sampled, refreshed every few minutes)",
            rows("estimated_bytes"),
        )

    def _caches(self, s: MemorySample) -> Iterator[str]:
        census = s.discord_caches
        if census is None:
            return
        entries = [row for name, n in census.counts for row in self._one(n, cache=name)]
        yield family("polly_discord_cache_entries", "gauge", "Entries in one of discord.py's caches", entries)
        if census.message_limit is not None:
            limit = self._one(census.message_limit)
            yield family("polly_discord_message_cache_limit", "gauge", "discord.py's max_messages", limit)
        if census.shards:
            yield from self._shards(census.shards)

    def _bot(self, s: MemorySample) -> Iterator[str]:
        """The bot census: task kinds by name (the top kinds only, the rest summed under one
        label value, so the label set stays bounded), views, sessions, survivors, children."""
        bot = s.bot
        if bot is None:
            return
        tasks = [row for t in bot.tasks for row in self._one(t.count, kind=t.name)]
        yield family("polly_asyncio_tasks", "gauge", "Live asyncio tasks by coroutine (top kinds)", tasks)
        views = [
            *self._one(bot.view_total, timeout="any"),
            *self._one(bot.no_timeout_views, timeout="none"),
        ]
        yield family("polly_discord_views", "gauge", "Views and modals in discord.py's view store", views)
        if bot.sessions is not None:
            sessions = [
                *self._one(bot.sessions.total, state="all"),
                *self._one(bot.sessions.unclosed, state="unclosed"),
                *self._one(bot.sessions.discord, state="discord"),
            ]
            doc = "Live aiohttp client sessions (counted at the last checkpoint)"
            yield family("polly_http_sessions", "gauge", doc, sessions)
        doc = "Cogs and extensions alive after their unload and a full collection"
        yield family("polly_extension_survivors", "gauge", doc, self._one(bot.survivor_total))
        if bot.children is not None:
            yield family("polly_child_processes", "gauge", "Processes below the bot", self._one(len(bot.children)))
            doc = "RSS of the processes below the bot, together"
            yield family("polly_child_processes_rss_bytes", "gauge", doc, self._one(bot.children_rss or 0))

    def _shards(self, shards: tuple[ShardState, ...]) -> Iterator[str]:
        def rows(value: Callable[[ShardState], float | None]) -> list[Sample]:
            return [
                sample
                for shard in shards
                if (v := value(shard)) is not None
                for sample in self._one(v, shard=str(shard.shard))
            ]

        yield family(
            "polly_discord_shard_latency_seconds",
            "gauge",
            "Gateway heartbeat latency of a shard",
            rows(lambda s: s.latency_s),
        )
        yield family(
            "polly_discord_shard_connected",
            "gauge",
            "1 while a shard's gateway is connected",
            rows(lambda s: float(s.connected)),
        )
        yield family("polly_discord_shard_guilds", "gauge", "Guilds on a shard", rows(lambda s: s.guilds))

    def _pool(self, s: MemorySample) -> Iterator[str]:
        pool = s.pool
        if pool is None:
            return
        figures = pool.as_dict()
        for key, doc in POOL_GAUGES.items():
            if figures.get(key) is not None:
                yield family(f"polly_db_pool_{key}", "gauge", doc, self._one(figures[key]))
        for key, doc in POOL_COUNTERS.items():
            yield family(f"polly_db_pool_{key}", "counter", doc, self._one(figures[key]))

    def _monitor(self) -> Iterator[str]:
        health = self.cycle.health
        yield family("polly_monitor_ticks", "counter", "Monitor ticks that completed", self._one(health.ticks))
        yield family(
            "polly_monitor_tick_errors", "counter", "Monitor tick and delivery errors", self._one(health.errors)
        )
        if health.last_tick_at is not None:
            yield family(
                "polly_monitor_last_tick_timestamp_seconds",
                "gauge",
                "Time of the last good tick",
                self._one(health.last_tick_at.timestamp()),
            )
        counts = dict.fromkeys(Rule, 0)
        for alert in self.cycle.engine.active():
            counts[alert.rule] += 1
        firing = [sample for rule, n in counts.items() for sample in self._one(n, rule=rule.value)]
        yield family("polly_alerts_firing", "gauge", "Alerts firing per rule", firing)
        yield from self._previous_run()

    def _profiles(self) -> Iterator[str]:
        rows = profile_snapshot()
        if not rows:
            return
        for name, kind, doc, attribute in (
            ("polly_profile_calls", "counter", "Calls of a profiled function", "calls"),
            ("polly_profile_seconds", "counter", "Time spent in a profiled function", "total_s"),
            ("polly_profile_seconds_max", "gauge", "Longest call of a profiled function", "max_s"),
            ("polly_profile_rss_change_bytes_max", "gauge", "Largest RSS change across one call", "rss_delta_max"),
        ):
            samples = [row for fn, stats in rows for row in self._one(getattr(stats, attribute), function=fn)]
            yield family(name, kind, doc, samples)

    def _process(self, s: MemorySample) -> Iterator[str]:
        # Unlabelled, as the standard process collector writes them: Prometheus's target labels apply.
        for name, kind, doc, value in (
            ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", s.vms),
            ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", s.rss),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process, Unix seconds.",
                self._started,
            ),
            ("process_open_fds", "gauge", "Number of open file descriptors.", s.open_fds),
            ("process_max_fds", "gauge", "Maximum number of open file descriptors.", self._max_fds),
        ):
            if value is not None:
                yield family(name, kind, doc, [({}, value)])
