"""What the fleet costs: one heartbeat per tick on PostgreSQL, /mem fleet for 1,000 instances, the
heartbeat table's size. Needs TEST_POSTGRES_URL (as the tests do); without it the PostgreSQL
figures say so.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from benchmarks._harness import Result, interleaved
from polly.config import load_settings
from polly.enhanced_database import Database
from polly.ext.fleet_render import fleet_embed
from polly.fleet import FleetStore, Heartbeat, heartbeat
from polly.fleet_tables import fleet_instances

INSTANCES = 1000
RENDER_BUDGET_S = 0.05


def members(count: int, now: datetime) -> list[Heartbeat]:
    return [
        heartbeat(
            f"host-{i // 8:03d}-shard{i}",
            [i],
            now - timedelta(hours=5),
            now - timedelta(seconds=900 if i % 97 == 0 else 30),
            (200 + i % 300) << 20,
            1 << 30,
            (i % 7) - 3.0,
            i % 3 == 0,
        )
        for i in range(count)
    ]


def render_cost() -> Result:
    now = datetime.now(UTC)
    fleet, few = members(INSTANCES, now), members(10, now)

    def cpu(group: list[Heartbeat]) -> float:
        start = time.process_time()
        fleet_embed(group, now=now, silent_after_s=180, shared=True)
        return time.process_time() - start

    median, base, _, _ = interleaved(lambda: cpu(fleet), lambda: cpu(few))
    return Result(
        f"/mem fleet for {INSTANCES:,} instances (rendering, CPU)",
        median,
        base,
        "s",
        f"≤ {RENDER_BUDGET_S * 1000:g} ms",
        median <= RENDER_BUDGET_S,
        median / base,
        "baseline: the same for 10 instances; the most loaded listed, the rest summarised",
    )


async def _postgres_costs(url: str) -> tuple[float, float, int, float]:
    db = Database(load_settings(env_file=None, database_url=url))
    await db.create_tables()
    async with db.transaction() as conn:
        await conn.execute(fleet_instances.delete())
    store = FleetStore(db, forget_hours=24)
    now = datetime.now(UTC)
    for beat in members(INSTANCES, now):  # a fleet of 1,000 rows, then one process's beats
        await store.beat(beat)
    mine = members(1, now)[0]
    beats, trips = [], []
    for _ in range(50):
        start = time.perf_counter()
        async with db.transaction() as conn:
            await conn.execute(text("SELECT 1"))
        trips.append(time.perf_counter() - start)
        start = time.perf_counter()
        await store.beat(mine)
        beats.append(time.perf_counter() - start)
    async with db.transaction() as conn:
        rows = await conn.scalar(select(func.count()).select_from(fleet_instances))
        size = await conn.scalar(text("SELECT pg_total_relation_size(:table)"), {"table": fleet_instances.name})
        await conn.execute(fleet_instances.delete())
    await db.dispose()
    return statistics.median(beats), statistics.median(trips), int(rows or 0), float(size or 0) / max(1, int(rows or 1))


def fleet_costs() -> list[Result]:
    results = [render_cost()]
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        results.append(
            Result(
                "heartbeat per tick (PostgreSQL)",
                float("nan"),
                float("nan"),
                "s",
                "reported",
                True,
                None,
                "no TEST_POSTGRES_URL",
            )
        )
        return results
    beat, trip, rows, per_row = asyncio.run(_postgres_costs(url))
    results += [
        Result(
            f"heartbeat per tick (PostgreSQL upsert + forget, {rows:,} rows)",
            beat,
            trip,
            "s",
            "reported",
            True,
            beat / trip,
            "baseline: one SELECT 1 transaction on the same pool",
        ),
        Result(
            "heartbeat table on disk per instance (with its indexes)",
            per_row / 1024,
            0.0,
            "KiB",
            "reported",
            True,
            None,
            f"{rows:,} rows: one per live process, rows silent for FLEET_FORGET_HOURS deleted",
        ),
    ]
    return results
