"""RSS over days, for charts: one row per 5 minutes (min, mean, max RSS, the limit, cleanups).

The in-memory history covers about a day at the default interval and is gone after a restart;
these rows survive it, and a restart shows as missing buckets. Bounded by construction: a row is
written when its bucket closes, and rows older than MEMORY_CHART_RETENTION_HOURS are deleted in
the same transaction (at most 2,016 rows for the default week).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select

from polly import clock
from polly.enhanced_database import Database
from polly.models import memory_history as table

BUCKET = timedelta(minutes=5)
MAX_HOURS = 168  # the longest chart


class ChartError(RuntimeError):
    """No chart could be made; the message says why (and, for an empty history, when). Defined
    here, not in polly.chart, so the bot can catch it without importing the chart code."""


MAX_POINTS = 600


def bucket_start(at: datetime) -> datetime:
    """The start of the 5-minute bucket `at` falls in (UTC)."""
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % int(BUCKET.total_seconds()), UTC)


@dataclass(slots=True)
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
                for bucket in pending:  # one at a time (almost always one): no executemany path to load
                    await conn.execute(insert(table), _row(bucket))
                oldest_kept = int((pending[-1].start - self.retention).timestamp())
                await conn.execute(delete(table).where(table.c.bucket_start < oldest_kept))
        except Exception:
            self._closed = (pending + self._closed)[-288:]
            raise
        return len(pending)

    async def load(self, since: datetime, max_points: int = MAX_POINTS) -> list[HistoryBucket]:
        """Buckets from `since`, oldest first, the open one last; merged in the database into at
        most about `max_points` (a week's 2,016 buckets become 504 of 20 minutes: a chart is 1,000
        pixels wide, and fewer objects keep the collector from pausing the loop)."""
        now = self.open.start if self.open is not None else clock.now()
        step_s = int(merged_step(now - since, max_points).total_seconds())
        stored: list[HistoryBucket] = []
        if self.db is not None:
            group = (table.c.bucket_start // step_s).label("slot")
            query = (
                select(
                    group,
                    func.min(table.c.bucket_start),
                    func.min(table.c.rss_min),
                    func.max(table.c.rss_max),
                    func.sum(table.c.rss_mean * table.c.samples),
                    func.sum(table.c.samples),
                    func.max(table.c.limit_bytes),
                    func.sum(table.c.cleanups),
                    func.sum(table.c.manual_cleanups),
                )
                .where(table.c.bucket_start >= int(since.timestamp()))
                .group_by(group)
                .order_by(group)
            )
            async with self.db.transaction() as conn:
                for _slot, start, low, high, total, samples, limit, cleanups, manual in await conn.execute(query):
                    stored.append(
                        HistoryBucket(
                            datetime.fromtimestamp(start, UTC),
                            low,
                            high,
                            int(total),
                            int(samples),
                            limit,
                            cleanups,
                            manual,
                        )
                    )
        unwritten = [b for b in (*self._closed, self.open) if b is not None and b.start >= since]
        return _merged(stored + unwritten)


def _row(b: HistoryBucket) -> dict[str, object]:
    return {
        "bucket_start": int(b.start.timestamp()),
        "rss_min": b.rss_min,
        "rss_mean": b.rss_mean,
        "rss_max": b.rss_max,
        "samples": b.samples,
        "limit_bytes": b.limit,
        "cleanups": b.cleanups,
        "manual_cleanups": b.manual_cleanups,
    }


def merged_step(span: timedelta, max_points: int = MAX_POINTS) -> timedelta:
    """How wide one point of a chart spanning `span` is: BUCKET, or a whole number of them so that
    there are at most about `max_points` (a week: 20 minutes)."""
    buckets = max(1, int(span / BUCKET))
    return BUCKET * max(1, -(-buckets // max_points))


def _merged(buckets: list[HistoryBucket]) -> list[HistoryBucket]:
    """One bucket per start: a restart inside a bucket writes it twice (once per process)."""
    merged: dict[datetime, HistoryBucket] = {}
    for b in buckets:
        same = merged.get(b.start)
        if same is None:
            merged[b.start] = replace(b)
            continue
        same.rss_min, same.rss_max = min(same.rss_min, b.rss_min), max(same.rss_max, b.rss_max)
        same.rss_sum += b.rss_sum
        same.samples += b.samples
        same.cleanups += b.cleanups
        same.manual_cleanups += b.manual_cleanups
        same.limit = b.limit
    return sorted(merged.values(), key=lambda b: b.start)
