"""The container's memory as /mem stats shows it: both ceilings, the working set, the cgroup's
memory by kind, the kernel's event counters and memory pressure; what cannot be read says so."""

from __future__ import annotations

from polly.container import STAT_PARTS, ContainerMemory
from polly.ext.discord_limits import FIELD_VALUE_LIMIT, clip
from polly.formatting import format_bytes
from polly.post_mortem import VERDICT_TITLES, PostMortem

EVENT_NAMES = {2: ("high", "max", "oom", "oom_kill"), 1: ("max", "oom_kill")}


def _ceiling(value: int | None) -> str:
    return format_bytes(value) if value is not None else "none"


def container_text(c: ContainerMemory) -> str:
    lines = []
    if c.version is None:
        lines.append("not in a memory cgroup (no container limit applies)")
    else:
        high = "memory.high" if c.version == 2 else "soft limit"
        usage = f" · usage {format_bytes(c.usage)}" if c.usage is not None else ""
        working = f" · working set **{format_bytes(c.working_set)}**" if c.working_set is not None else ""
        lines.append(
            f"cgroup v{c.version} · max {_ceiling(c.limit_max)} · {high} {_ceiling(c.limit_high)}{usage}{working}"
        )
        parts = [f"{part} {format_bytes(c.stat[part])}" for part in STAT_PARTS if part in c.stat]
        if parts:
            lines.append(" · ".join(parts))
        counted = [f"{name} {c.events[name]:,}" for name in EVENT_NAMES[c.version] if name in c.events]
        if counted:
            lines.append("events since the cgroup began: " + " · ".join(counted))
    p = c.pressure
    if p is not None:
        full = (
            f" · full {p.full_avg10:.1f} / {p.full_avg60:.1f} %"
            if p.full_avg10 is not None and p.full_avg60 is not None
            else ""
        )
        lines.append(f"pressure ({p.source}, 10 s / 60 s): some {p.some_avg10:.1f} / {p.some_avg60:.1f} %{full}")
    if c.unavailable:
        lines.append("unavailable: " + "; ".join(c.unavailable))
    return clip("\n".join(lines), FIELD_VALUE_LIMIT)


def previous_run_text(previous: PostMortem) -> str:
    return f"**{VERDICT_TITLES[previous.verdict]}** · {clip(previous.previous.run, 120)} · see /mem alerts"
