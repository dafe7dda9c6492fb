"""The JSON stats of one sample (`/health/memory`, `get_memory_stats()`), and the process's default monitor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polly.config import Settings
from polly.formatting import MIB
from polly.samples import MemorySample
from polly.trend import Trend

if TYPE_CHECKING:
    from polly.memory_optimizer import MemoryMonitor


def memory_stats_payload(sample: MemorySample, trend: Trend, checkpoints_count: int) -> dict[str, Any]:
    """The JSON-serialisable stats of one sample; sizes in MiB as in the original plan."""

    def mib(value: int | None) -> float | None:
        return None if value is None else round(value / MIB, 1)

    return {
        "timestamp": sample.at.isoformat(),
        "rss": mib(sample.rss),
        "vms": mib(sample.vms),
        "uss": mib(sample.uss),
        "swap": mib(sample.swap),
        "peak_rss": mib(sample.peak_rss),
        "percent": round(sample.percent_of_limit, 2),
        "available": mib(sample.system_available),
        "system_total": mib(sample.system_total),
        "system_used": mib(sample.system_used),
        "system_percent": sample.system_percent,
        "limit": mib(sample.limit),
        "limit_source": sample.limit_source,
        "percent_of_limit": round(sample.percent_of_limit, 2),
        "checkpoints_count": checkpoints_count,
        "trend": {
            "slope_mib_per_hour": None if trend.slope_mib_per_hour is None else round(trend.slope_mib_per_hour, 3),
            "samples": trend.samples,
            "seconds_to_threshold": trend.seconds_to_threshold,
        },
        "structures": [
            {"name": s.name, "size": s.size, "limit": s.limit, "fill_percent": s.fill_percent}
            for s in sample.structures
        ],
        "pool": None if sample.pool is None else sample.pool.as_dict(),
        "discord_caches": None if sample.discord_caches is None else sample.discord_caches.as_dict(),
        "gc_counts": list(sample.gc_counts),
        "loop_lag_ms": sample.loop_lag_ms,
        "threads": sample.threads,
        "open_fds": sample.open_fds,
    }


_default_monitor: MemoryMonitor | None = None


def set_default_monitor(monitor: MemoryMonitor | None) -> None:
    """The bot registers its monitor here so `get_memory_stats()` renders the same samples."""
    global _default_monitor
    _default_monitor = monitor


def get_default_monitor_or_none() -> MemoryMonitor | None:
    """The monitor a running memory layer registered, if any (no default is built)."""
    return _default_monitor


def get_default_monitor() -> MemoryMonitor:
    global _default_monitor
    if _default_monitor is None:
        from polly.memory_optimizer import MemoryMonitor  # the monitor module imports this one

        _default_monitor = MemoryMonitor(Settings())
    return _default_monitor


def get_memory_stats() -> dict[str, Any]:
    """The latest sample of the process's monitor as one JSON-serialisable dict."""
    return get_default_monitor().stats_dict()
