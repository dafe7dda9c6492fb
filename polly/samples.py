"""One consistent memory sample of the process, the system and the bot's own structures."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from polly.caches import CacheCensus
from polly.container import ContainerMemory
from polly.enhanced_database import PoolStatus
from polly.records import asdict, record
from polly.registry import StructureStat

if TYPE_CHECKING:
    from polly.bot_census import BotCensus
    from polly.rss_breakdown import RssBreakdown


async def measure_loop_lag() -> float:
    """Milliseconds one turn of the event loop takes right now (how long callbacks wait)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    turn = loop.create_future()
    loop.call_soon(turn.set_result, None)
    await turn
    return (time.perf_counter() - started) * 1000


@record(hot=True)  # one a tick, built by keyword (29 fields)
class MemorySample:
    """One consistent reading of the process, the system and the bot's own structures."""

    at: datetime
    rss: int
    vms: int
    uss: int | None
    pss: int | None
    swap: int | None
    peak_rss: int | None
    threads: int
    open_fds: int | None
    system_total: int
    system_available: int
    system_used: int
    system_percent: float
    limit: int
    limit_source: str
    gc_counts: tuple[int, int, int]
    gc_collections: tuple[int, int, int]
    structures: tuple[StructureStat, ...] = ()
    pool: PoolStatus | None = None
    loop_lag_ms: float | None = None
    gc_objects: int | None = None
    discord_caches: CacheCensus | None = None
    type_counts: dict[str, int] | None = None  # at checkpoints only: the most common types
    container: ContainerMemory | None = None  # the memory cgroup and pressure, as far as readable
    rss_anon: int | None = None  # RSS split (Linux /proc/self/status): anonymous pages,
    rss_file: int | None = None  # file-backed pages (code, libraries, mapped files)
    rss_shmem: int | None = None  # and shared memory
    breakdown: RssBreakdown | None = None  # where the RSS is: read when shown, not at every tick
    bot: BotCensus | None = None  # what the bot keeps alive: tasks, views, sessions, survivors, children

    @property
    def percent_of_limit(self) -> float:
        return 100.0 * self.rss / self.limit if self.limit else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["percent_of_limit"] = round(self.percent_of_limit, 2)
        data["structures"] = [{**asdict(s), "fill_percent": s.fill_percent} for s in self.structures]
        data["pool"] = None if self.pool is None else self.pool.as_dict()
        data["discord_caches"] = None if self.discord_caches is None else self.discord_caches.as_dict()
        data["container"] = None if self.container is None else self.container.to_dict()
        data["breakdown"] = None if self.breakdown is None else self.breakdown.to_dict()
        data["bot"] = None if self.bot is None else self.bot.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemorySample:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["at"] = datetime.fromisoformat(values["at"])
        values["gc_counts"] = tuple(values.get("gc_counts") or (0, 0, 0))
        values["gc_collections"] = tuple(values.get("gc_collections") or (0, 0, 0))
        fields = StructureStat.__dataclass_fields__
        values["structures"] = tuple(
            StructureStat(**{k: v for k, v in s.items() if k in fields}) for s in values.get("structures", [])
        )
        if values.get("pool") is not None:
            values["pool"] = PoolStatus.from_dict(values["pool"])
        if values.get("discord_caches") is not None:
            values["discord_caches"] = CacheCensus.from_dict(values["discord_caches"])
        if values.get("container") is not None:
            values["container"] = ContainerMemory.from_dict(values["container"])
        if values.get("breakdown") is not None:
            from polly.rss_breakdown import RssBreakdown

            values["breakdown"] = RssBreakdown.from_dict(values["breakdown"])
        if values.get("bot") is not None:
            from polly.bot_census import BotCensus

            values["bot"] = BotCensus.from_dict(values["bot"])
        return cls(**values)


def peak_rss() -> int | None:
    """The highest RSS so far from getrusage, where /proc/self/status has no VmHWM (the fallback:
    `resource` is a C extension, ~24 KiB of mapped pages a Linux bot need not load)."""
    import resource

    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    except (OSError, ValueError):
        return None
