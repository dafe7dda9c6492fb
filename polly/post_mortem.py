"""What killed the last run: each run keeps a record of itself (the last sample's figures, what grew,
what fired, the kernel's OOM-kill counter) and marks a clean stop; a start that finds the previous
run of its INSTANCE_NAME without that mark judges how it ended and reports it once, through the
alert outbox like every alert.

The record is one row of `polly_runtime_settings` (`run:<instance>`), rewritten at each tick: a bot
about to be killed has nothing left to do at the end, so what the post-mortem needs is always the
last tick's (the type counts are the last automatic checkpoint's: no heap walk on a dying bot).
The report and the new run's record are written in one transaction: a start that dies right after
neither loses the report nor makes it twice.
"""

from __future__ import annotations

import enum
import json
import math
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from polly.alert_store import AlertStore
from polly.alerts import ActiveAlert, AlertTransition, Rule, Transition
from polly.container import ContainerMemory
from polly.formatting import MIB, format_bytes, format_duration
from polly.heap_types import TypeGrowth
from polly.samples import MemorySample
from polly.trend import Trend

RUN_KEY_PREFIX = "run:"


class Verdict(enum.StrEnum):
    KILLED = "killed_for_memory"
    LIKELY = "likely_killed_for_memory"
    UNCLEAN = "unclean_stop"


# The label values of polly_previous_run_unclean: a fixed set ("none": the previous run stopped cleanly)
VERDICT_LABELS = ("none", *(v.value for v in Verdict))
VERDICT_TITLES = {
    Verdict.KILLED: "Killed for memory",
    Verdict.LIKELY: "Likely killed for memory",
    Verdict.UNCLEAN: "Stopped without a clean shutdown",
}
VERDICT_CODES = {Verdict.UNCLEAN: 0.0, Verdict.LIKELY: 1.0, Verdict.KILLED: 2.0}  # the event's value
VERDICT_HINTS = {
    Verdict.KILLED: (
        "Give the container more memory or find what grew: the chart shows the climb before the gap; take "
        "/mem checkpoint now and again in an hour, and compare."
    ),
    Verdict.LIKELY: (
        "Check the supervisor's log for a kill (exit 137, OOMKilled); raise the limit or find what grew: "
        "/mem checkpoint now and again in an hour, and compare."
    ),
    Verdict.UNCLEAN: (
        "Check the supervisor's and the host's logs: a crash leaves a traceback, SIGKILL and host restarts do not."
    ),
}


@dataclass(frozen=True)
class RunRecord:
    """What one run said of itself at its last tick, and whether it stopped cleanly."""

    run: str  # names the run in the report: host, pid, start
    host: str
    pid: int
    started_at: datetime
    cgroup: str | None = None  # the memory cgroup whose OOM-kill counter is recorded
    oom_kills: int | None = None
    at: datetime | None = None  # the last sample's time
    rss: int | None = None
    limit: int | None = None
    limit_source: str | None = None
    percent: float | None = None
    slope_mib_per_hour: float | None = None
    growing: tuple[str, ...] = ()  # the last automatic checkpoint's growing types
    firing: tuple[str, ...] = ()
    stopped_at: datetime | None = None  # a clean stop: SIGTERM, SIGINT, :quit, close()

    def to_json(self) -> str:
        data = asdict(self)
        for name in ("started_at", "at", "stopped_at"):
            data[name] = data[name].isoformat() if data[name] is not None else None
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunRecord | None:
        """The stored record, or None when it is not one (another version's, damaged)."""
        try:
            data: dict[str, Any] = json.loads(text)
            values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            for name in ("started_at", "at", "stopped_at"):
                if values.get(name) is not None:
                    values[name] = datetime.fromisoformat(values[name])
            values["growing"] = tuple(values.get("growing") or ())
            values["firing"] = tuple(values.get("firing") or ())
            return cls(**values)
        except (ValueError, TypeError, AttributeError):
            return None

    @property
    def seconds_to_limit(self) -> float | None:
        """At the last sample's trend, when RSS would have reached the limit (None: not rising)."""
        if self.rss is None or self.limit is None or not self.slope_mib_per_hour or self.slope_mib_per_hour <= 0:
            return None
        return max(0.0, (self.limit - self.rss) / MIB / self.slope_mib_per_hour * 3600)


@dataclass(frozen=True)
class PostMortem:
    verdict: Verdict
    evidence: str
    previous: RunRecord

    def transition(self, now: datetime) -> AlertTransition:
        """The report as an alert event: stored, then delivered once like every alert."""
        p = self.previous
        ended = f"after its last sample at {p.at:%Y-%m-%d %H:%M:%S} UTC" if p.at else "before its first sample"
        lines = [
            f"**{VERDICT_TITLES[self.verdict]}.** The previous run ({p.run}) ended without a clean stop {ended}.",
            f"Evidence: {self.evidence}",
        ]
        if p.rss is not None and p.limit is not None and p.percent is not None:
            figures = (
                f"RSS {format_bytes(p.rss)}, {p.percent:.1f} % of the {format_bytes(p.limit)} limit ({p.limit_source})"
            )
            if p.slope_mib_per_hour is not None:
                figures += f"; trend {p.slope_mib_per_hour:+.1f} MiB/h"
                eta = p.seconds_to_limit
                figures += f", the limit in {format_duration(eta)}" if eta is not None else ""
            lines.append(f"Last figures: {figures}")
        if p.growing:
            lines.append(f"Growing at the last automatic checkpoint: {', '.join(p.growing)}")
        if p.firing:
            lines.append(f"Firing then: {', '.join(p.firing)}")
        lines.append(f"What to do: {VERDICT_HINTS[self.verdict]}")
        code = VERDICT_CODES[self.verdict]
        return AlertTransition(Transition.REPORTED, Rule.PREVIOUS_RUN, p.run, code, 0.0, "\n".join(lines), now, now)


def judge(
    previous: RunRecord, container: ContainerMemory | None, critical_percent: float, interval_s: float
) -> PostMortem | None:
    """How the previous run ended, or None when it stopped cleanly. The kernel's word first: its
    cgroup's OOM-kill counter grew since the run recorded it; else the figures: the last sample at
    ALERT_CRITICAL_MEMORY_PERCENT or more, or the trend reaching the limit before the next sample."""
    if previous.stopped_at is not None:
        return None
    now_kills = container.oom_kills if container is not None else None
    source = (
        "memory.events oom_kill" if container is not None and container.version == 2 else "memory.oom_control oom_kill"
    )
    if previous.oom_kills is not None and now_kills is not None and container is not None:
        if container.path == previous.cgroup and now_kills > previous.oom_kills:
            evidence = (
                f"the kernel's OOM killer killed {now_kills - previous.oom_kills} process(es) of this cgroup since "
                f"that run's last sample ({source} {previous.oom_kills} → {now_kills}, {container.path})"
            )
            return PostMortem(Verdict.KILLED, evidence, previous)
        why = "its counter did not grow" if container.path == previous.cgroup else "this run is in another cgroup"
    elif previous.oom_kills is None or now_kills is None:
        why = "the kernel's OOM-kill counter is not readable here"
    else:
        why = "no cgroup to ask"
    eta = previous.seconds_to_limit
    if previous.percent is not None and previous.percent >= critical_percent:
        evidence = (
            f"no word from the kernel ({why}), but the last sample was at {previous.percent:.1f} % of the limit "
            f"(ALERT_CRITICAL_MEMORY_PERCENT {critical_percent:g} %)"
        )
        return PostMortem(Verdict.LIKELY, evidence, previous)
    if eta is not None and eta <= interval_s:
        evidence = (
            f"no word from the kernel ({why}), but at its trend RSS reached the limit within "
            f"{format_duration(eta)}, before the next sample"
        )
        return PostMortem(Verdict.LIKELY, evidence, previous)
    at = f"{previous.percent:.1f} % of the limit" if previous.percent is not None else "no sample yet"
    return PostMortem(Verdict.UNCLEAN, f"no word from the kernel ({why}); the last sample was at {at}", previous)


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
        verdict = judge(before, container, critical_percent, interval_s) if before is not None else None
        if before is not None and (before.host, before.pid) == (host, pid):
            verdict = None  # this very process, opened again (a reload whose stop mark was refused)
        now = self.clock()
        self.record = RunRecord(
            f"host {host}, pid {pid}, started {now:%Y-%m-%d %H:%M:%S} UTC",
            host,
            pid,
            now,
            container.path if container is not None else None,
            container.oom_kills if container is not None else None,
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
