"""Prometheus exposition of the monitor's latest sample (no measuring of its own).

Labels never carry guild, user or channel ids: only the structure name, the rule, the GC
generation, and `polly_instance` (METRICS_INSTANCE) so a fleet of shards can be told apart.
Prometheus adds its own `instance` label per scrape target, hence the different name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from polly.alerts import Rule
from polly.memory_optimizer import MemorySample
from polly.monitor_cycle import MonitorCycle

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


class MemoryCollector(Collector):
    """One `collect()` reading the cycle's monitor, alert engine and health."""

    def __init__(self, cycle: MonitorCycle, instance: str) -> None:
        self.cycle = cycle
        self.instance = instance

    def _sample(self) -> MemorySample:
        monitor = self.cycle.monitor
        return monitor.latest or monitor.sample()

    def _gauge(self, name: str, doc: str, value: float | None, unit: str = "") -> Iterator[GaugeMetricFamily]:
        if value is None:
            return
        family = GaugeMetricFamily(name, doc, labels=[INSTANCE_LABEL], unit=unit)
        family.add_metric([self.instance], float(value))
        yield family

    def collect(self) -> Iterator[Any]:
        s = self._sample()
        trend = self.cycle.monitor.trend()
        yield from self._gauge("polly_memory_rss_bytes", "Resident set size of the bot process", s.rss)
        yield from self._gauge("polly_memory_uss_bytes", "Unique set size (memory freed if it exited)", s.uss)
        yield from self._gauge("polly_memory_swap_bytes", "Swapped-out memory of the bot process", s.swap)
        limit = GaugeMetricFamily(
            "polly_memory_limit_bytes", "Effective memory limit", labels=[INSTANCE_LABEL, "source"]
        )
        limit.add_metric([self.instance, s.limit_source], float(s.limit))
        yield limit
        yield from self._gauge("polly_memory_limit_used_percent", "RSS as a percent of the limit", s.percent_of_limit)
        yield from self._gauge(
            "polly_memory_rss_trend_mib_per_hour", "Slope of RSS over the trend window", trend.slope_mib_per_hour
        )
        yield from self._gauge(
            "polly_event_loop_lag_seconds",
            "Event-loop lag at the last sample",
            None if s.loop_lag_ms is None else s.loop_lag_ms / 1000,
        )
        yield from self._structures(s)
        yield from self._pool(s.pool)
        gc_runs = CounterMetricFamily(
            "polly_gc_collections", "GC runs per generation", labels=[INSTANCE_LABEL, "generation"]
        )
        for generation, runs in enumerate(s.gc_collections):
            gc_runs.add_metric([self.instance, str(generation)], runs)
        yield gc_runs
        yield from self._monitor()

    def _structures(self, s: MemorySample) -> Iterator[Any]:
        labels = [INSTANCE_LABEL, "structure"]
        size = GaugeMetricFamily("polly_tracked_structure_size", "Entries in a tracked structure", labels=labels)
        limit = GaugeMetricFamily("polly_tracked_structure_limit", "Size limit of a tracked structure", labels=labels)
        age = GaugeMetricFamily(
            "polly_tracked_structure_oldest_age_seconds", "Age of the oldest entry, where known", labels=labels
        )
        for stat in s.structures:
            size.add_metric([self.instance, stat.name], stat.size)
            if stat.limit:
                limit.add_metric([self.instance, stat.name], stat.limit)
            if stat.oldest_age_s is not None:
                age.add_metric([self.instance, stat.name], stat.oldest_age_s)
        yield size
        yield limit
        yield age

    def _pool(self, pool: dict[str, Any] | None) -> Iterator[Any]:
        if not pool:
            return
        for key, doc in POOL_GAUGES.items():
            if key in pool:
                yield from self._gauge(f"polly_db_pool_{key}", doc, pool[key])
        for key, doc in POOL_COUNTERS.items():
            family = CounterMetricFamily(f"polly_db_pool_{key}", doc, labels=[INSTANCE_LABEL])
            family.add_metric([self.instance], pool.get(key, 0))
            yield family

    def _monitor(self) -> Iterator[Any]:
        health = self.cycle.health
        for name, doc, value in (
            ("polly_monitor_ticks", "Monitor ticks that completed", health.ticks),
            ("polly_monitor_tick_errors", "Monitor tick and delivery errors", health.errors),
        ):
            family = CounterMetricFamily(name, doc, labels=[INSTANCE_LABEL])
            family.add_metric([self.instance], value)
            yield family
        if health.last_tick_at is not None:
            last_tick = health.last_tick_at.timestamp()
            yield from self._gauge("polly_monitor_last_tick_timestamp_seconds", "Time of the last good tick", last_tick)
        firing = GaugeMetricFamily("polly_alerts_firing", "Alerts firing per rule", labels=[INSTANCE_LABEL, "rule"])
        counts = dict.fromkeys(Rule, 0)
        for alert in self.cycle.engine.active():
            counts[alert.rule] += 1
        for rule, count in counts.items():
            firing.add_metric([self.instance, rule.value], count)
        yield firing


def build_registry(cycle: MonitorCycle, instance: str) -> CollectorRegistry:
    """A registry of our collector plus the standard process collector (not the global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MemoryCollector(cycle, instance))
    ProcessCollector(registry=registry)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
