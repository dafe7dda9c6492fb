"""This run's record, kept for a post-mortem should it die: rewritten at each tick and marked at a
clean stop; at a start, the previous run's is judged (`polly.post_mortem`, loaded only when that run
did not stop cleanly).

The record is one row of `polly_runtime_settings` (`run:<instance>`): a bot about to be killed has
nothing left to do at the end, so what the post-mortem needs is always the last tick's (the type
counts are the last automatic checkpoint's: no heap walk on a dying bot). The report and the new
run's record are stored in one transaction: a start that dies right after neither loses the report
nor makes it twice.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from polly.alert_store import AlertStore
from polly.alerts import ActiveAlert
from polly.container import ContainerMemory
from polly.heap_types import TypeGrowth
from polly.records import replace
from polly.run_record import RUN_KEY_PREFIX, RunRecord
from polly.samples import MemorySample
from polly.trend import Trend

if TYPE_CHECKING:
    from polly.post_mortem import PostMortem

# This process, among all runs of the instance (kept across extension reloads: polly's modules are).
PROCESS_ID = uuid.uuid4().hex


class RunJournal:
    """This run's record in the database, and the judgement of the previous one."""

    def __init__(self, store: AlertStore, instance: str, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.key = f"{RUN_KEY_PREFIX}{instance}"[:64]
        self.clock = clock
        self.record: RunRecord | None = None
        self.previous: PostMortem | None = None  # the judgement made at the start
        self.judged = False  # False until begin(): nothing is known of the previous run yet

    async def begin(
        self, container: ContainerMemory | None, critical_percent: float, interval_s: float
    ) -> PostMortem | None:
        """Judge the previous run, store its report (if any) and this run's first record together."""
        stored = await self.store.get_setting(self.key)
        before = RunRecord.from_json(stored) if stored else None
        host, pid = socket.gethostname(), os.getpid()
        verdict = None
        # Not this very process opened again (a reload whose stop mark was refused): a death. Told by
        # a random id, not (host, pid): in a container the bot is pid 1 of the same host every run.
        if before is not None and before.stopped_at is None and before.process != PROCESS_ID:
            from polly.post_mortem import judge  # the report's code: loaded only when there is one

            verdict = judge(before, container, critical_percent, interval_s)
        now = self.clock()
        self.record = RunRecord(
            f"host {host}, pid {pid}, started {now:%Y-%m-%d %H:%M:%S} UTC",
            host,
            pid,
            now,
            container.path if container is not None else None,
            container.oom_kills if container is not None else None,
            process=PROCESS_ID,
        )
        report = verdict.transition(now) if verdict is not None else None
        await self.store.record_with_setting(report, self.key, self.record.to_json())
        self.previous, self.judged = verdict, True
        return verdict

    async def note(
        self,
        sample: MemorySample,
        trend: Trend,
        growing: Sequence[TypeGrowth],
        firing: Iterable[ActiveAlert],
    ) -> None:
        """Rewrite this run's record with the tick's figures (what a post-mortem would need)."""
        if self.record is None:
            return
        container = sample.container
        kills = container.oom_kills if container is not None else None
        slope = (
            trend.slope_mib_per_hour
            if trend.slope_mib_per_hour is not None and math.isfinite(trend.slope_mib_per_hour)
            else None
        )
        self.record = replace(
            self.record,
            cgroup=container.path if container is not None else self.record.cgroup,
            oom_kills=kills if kills is not None else self.record.oom_kills,
            at=sample.at,
            rss=sample.rss,
            limit=sample.limit,
            limit_source=sample.limit_source,
            percent=round(sample.percent_of_limit, 2),
            slope_mib_per_hour=slope,
            growing=tuple(g.short() for g in growing[:5]),
            firing=tuple(f"{a.rule.value} ({a.subject[:60]})" for a in list(firing)[:10]),
        )
        await self.store.set_setting(self.key, self.record.to_json())

    async def stop(self) -> None:
        """Mark a clean stop: the next start has nothing to report."""
        if self.record is None:
            return
        self.record = replace(self.record, stopped_at=self.clock())
        await self.store.set_setting(self.key, self.record.to_json())
