"""The JSON stats of one sample (`/health/memory`, `get_memory_stats()`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polly.formatting import MIB
from polly.samples import MemorySample
from polly.trend import Trend

if TYPE_CHECKING:
    from polly.rss_breakdown import RssBreakdown


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
        "breakdown": None if sample.breakdown is None else breakdown_payload(sample.breakdown),
    }


def breakdown_payload(breakdown: RssBreakdown) -> dict[str, Any]:
    """Where the RSS is: each part in MiB (None: unavailable, with why), and the verdict."""
    from polly.rss_verdict import verdict

    return {
        "parts": {p.name: None if p.bytes is None else round(p.bytes / MIB, 1) for p in breakdown.parts},
        "unavailable": {p.name: p.why for p in breakdown.parts if p.bytes is None},
        "at_most": [p.name for p in breakdown.parts if p.at_most],
        "malloc": breakdown.malloc,
        "python": breakdown.python,
        "verdict": verdict(breakdown).sentence,
    }
