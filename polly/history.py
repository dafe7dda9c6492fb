"""RSS over days, for charts: one row per 5 minutes (min, mean, max RSS, the limit, cleanups).

The in-memory history covers about a day at the default interval and is gone after a restart;
these rows survive it, and a restart shows as missing buckets. Bounded by construction: a row is
written when its bucket closes, and rows older than MEMORY_CHART_RETENTION_HOURS are deleted in
the same transaction (at most 2,016 rows for the default week).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Row

from polly.enhanced_database import Database
from polly.models import memory_history as table

BUCKET = timedelta(minutes=5)


def bucket_start(at: datetime) -> datetime:
    """The start of the 5-minute bucket `at` falls in (UTC)."""
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % int(BUCKET.total_seconds()), UTC)


@dataclass
class HistoryBucket:
    start: datetime
    rss_min: int
    rss_max: int
    rss_sum: int
    samples: int
    limit: int
    cleanups: int = 0
    manual_cleanups: int = 0

    @property
    def rss_mean(self) -> int:
        return self.rss_sum // max(1, self.samples)

    def add(self, rss: int, limit: int) -> None:
        self.rss_min = min(self.rss_min, rss)
        self.rss_max = max(self.rss_max, rss)
        self.rss_sum += rss
        self.samples += 1
        self.limit = limit


class HistoryRecorder:
    """Folds samples into the open bucket; the closed one is written by `flush_due()`."""

    def __init__(self, db: Database | None, retention_hours: float) -> None:
        self.db = db
        self.retention = timedelta(hours=retention_hours)
        self.open: HistoryBucket | None = None
        self._closed: list[HistoryBucket] = []  # closed, not yet written (the database refused)

    def add(self, at: datetime, rss: int, limit: int) -> None:
        start = bucket_start(at)
        if self.open is not None and self.open.start != start:
            self._closed.append(self.open)
            self.open = None
        if self.open is None:
            self.open = HistoryBucket(start, rss, rss, 0, 0, limit)
        self.open.add(rss, limit)

    def note_cleanup(self, at: datetime, *, manual: bool) -> None:
        if self.open is None or self.open.start != bucket_start(at):
            return  # before the first sample: nothing to hang it on
        self.open.cleanups += 1
        self.open.manual_cleanups += int(manual)

    async def flush_due(self) -> int:
        """Write the closed buckets and drop rows past the retention; kept for the next try (at most
        a day's worth) if the database refuses. Returns the rows written."""
        if self.db is None or not self._closed:
            return 0
        pending, self._closed = self._closed, []
        try:
            async with self.db.transaction() as conn:
                await conn.execute(insert(table), [_row(b) for b in pending])
                await conn.execute(delete(table).where(table.c.bucket_start < pending[-1].start - self.retention))
        except Exception:
            self._closed = (pending + self._closed)[-288:]
            raise
        return len(pending)

    async def load(self, since: datetime) -> list[HistoryBucket]:
        """Stored buckets from `since`, oldest first, then the open one."""
        stored: list[HistoryBucket] = []
        if self.db is not None:
            async with self.db.transaction() as conn:
                query = select(table).where(table.c.bucket_start >= since).order_by(table.c.bucket_start)
                rows = await conn.execute(query)
                stored = [_bucket(r) for r in rows]
        unwritten = [b for b in (*self._closed, self.open) if b is not None and b.start >= since]
        return _merged(stored + unwritten)


def _row(b: HistoryBucket) -> dict[str, object]:
    return {
        "bucket_start": b.start,
        "rss_min": b.rss_min,
        "rss_mean": b.rss_mean,
        "rss_max": b.rss_max,
        "samples": b.samples,
        "limit_bytes": b.limit,
        "cleanups": b.cleanups,
        "manual_cleanups": b.manual_cleanups,
    }


def _bucket(r: Row[Any]) -> HistoryBucket:
    start = r.bucket_start if r.bucket_start.tzinfo else r.bucket_start.replace(tzinfo=UTC)
    return HistoryBucket(
        start, r.rss_min, r.rss_max, r.rss_mean * r.samples, r.samples, r.limit_bytes, r.cleanups, r.manual_cleanups
    )


def _merged(buckets: list[HistoryBucket]) -> list[HistoryBucket]:
    """One bucket per start: a restart inside a bucket writes it twice (once per process)."""
    merged: dict[datetime, HistoryBucket] = {}
    for b in buckets:
        same = merged.get(b.start)
        if same is None:
            merged[b.start] = HistoryBucket(**vars(b))
            continue
        same.rss_min, same.rss_max = min(same.rss_min, b.rss_min), max(same.rss_max, b.rss_max)
        same.rss_sum += b.rss_sum
        same.samples += b.samples
        same.cleanups += b.cleanups
        same.manual_cleanups += b.manual_cleanups
        same.limit = b.limit
    return sorted(merged.values(), key=lambda b: b.start)
