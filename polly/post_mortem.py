"""What killed the last run: a start that finds the previous run of its INSTANCE_NAME without a
clean-stop mark (`polly.run_record`) judges how it ended, and the report goes out once through the
alert outbox like every alert. Loaded only when there is something to judge or show."""

from __future__ import annotations

import enum
from datetime import datetime

from polly.alerts import AlertTransition, Rule, Transition
from polly.container import ContainerMemory
from polly.formatting import format_bytes, format_duration
from polly.records import record
from polly.run_record import RunRecord


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


@record
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
    else:  # no cgroup, or one whose counter this kernel does not keep
        why = "the kernel's OOM-kill counter is not readable here"
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
