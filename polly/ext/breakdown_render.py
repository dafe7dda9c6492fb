"""Where the RSS is, as /mem stats (one field) and /mem explain (the whole story) show it."""

from __future__ import annotations

import os

import discord

from polly.ext.discord_limits import COLOR_INFO, COLOR_WARN, add_field, clip, code_table, fit_embed, new_embed
from polly.formatting import MIB, format_bytes, format_duration
from polly.memory_ops import ExplainView
from polly.rss_breakdown import FREE_PARTS, RssBreakdown, changes
from polly.rss_verdict import verdict

SHORT_LABELS = {
    "python_objects": "Python objects",
    "python_free": "Python free",
    "malloc_used": "malloc",
    "malloc_free": "malloc free",
    "file_mapped": "files",
    "other": "other",
}


def _size(breakdown: RssBreakdown, name: str) -> str:
    part = breakdown.part(name)
    if part.bytes is None:
        return "unavailable"
    return ("≤ " if part.at_most else "") + format_bytes(part.bytes)


def breakdown_field(breakdown: RssBreakdown) -> str:
    """/mem stats: the parts on one line, the verdict on the next."""
    parts = " · ".join(f"{SHORT_LABELS[p.name]} {_size(breakdown, p.name)}" for p in breakdown.parts)
    return f"{parts}\n{verdict(breakdown).sentence} Details: /mem explain"


def step_changes(before: RssBreakdown | None, after: RssBreakdown | None, shown: int = 3) -> str:
    """What one cleanup step moved between parts: `Python objects -12.0 MiB, Python free +11.4 MiB`."""
    if before is None or after is None:
        return "parts not readable"
    moved = sorted((c for c in changes(before, after) if abs(c.change) >= MIB // 10), key=lambda c: -abs(c.change))
    if not moved:
        return "no part changed by 0.1 MiB or more"
    return ", ".join(f"{c.label} {format_bytes(c.change, signed=True)}" for c in moved[:shown])


def arena_max() -> str:
    return os.environ.get("MALLOC_ARENA_MAX") or "unset: 8 per core"


def explain_embed(view: ExplainView) -> discord.Embed:
    now, before = view.sample.breakdown, view.before_breakdown
    if now is None:
        return new_embed(
            "Where the RSS is",
            "The allocators' statistics could not be read this time (the log says why); try again.",
            COLOR_WARN,
        )
    found = verdict(now, before)
    embed = new_embed(
        "Where the RSS is",
        f"**{found.sentence}**\n{found.advice}",
        COLOR_WARN if found.part in (*FREE_PARTS, "malloc_used", "other") else COLOR_INFO,
    )
    grown = {c.name: c.change for c in changes(before, now)} if before is not None else {}
    rows = [
        (
            p.label,
            _size(now, p.name),
            f"{100 * (p.bytes or 0) / now.rss:.0f} %" if p.bytes is not None else "",
            format_bytes(grown[p.name], signed=True) if p.name in grown else "",
        )
        for p in now.parts
    ]
    since = "change" if view.before is None else "since checkpoint"
    add_field(embed, f"RSS {format_bytes(now.rss)}", code_table(rows, ("part", "size", "of RSS", since)))
    if view.before is not None:
        compared = f"`{clip(view.before.label, 100)}` ({view.before.created_at:%Y-%m-%d %H:%M} UTC)"
        if before is None:
            compared += ": taken before breakdowns were stored, so no change is shown"
        add_field(embed, "Compared with", compared)
    else:
        add_field(embed, "Compared with", "no automatic checkpoint yet: the change shows from the first one on")
    if found.part in FREE_PARTS:
        trim = view.last_trim
        if trim is not None and trim.returned is not None:
            add_field(
                embed,
                "Last heap trim",
                f"gave back {format_bytes(trim.returned)} in {format_duration(trim.ms / 1000)} (/mem cleanup runs one)",
            )
        else:
            add_field(embed, "Last heap trim", "none since the start: /mem cleanup runs one")
    if found.part == "python_objects" and view.growing:
        growing = ", ".join(f"`{g.name}` {g.change:+,}" for g in view.growing[:5])
        add_field(embed, "Types that grew (between the last automatic checkpoints)", growing)
    notes = [f"{p.label}: {p.why}" for p in now.parts if p.why]
    if any(p.at_most for p in now.parts):
        notes.append("≤: the allocators hold more than is resident; the part is cut to what RSS can hold")
    arenas = f" ({view.malloc_arenas} arenas; MALLOC_ARENA_MAX {arena_max()})" if view.malloc_arenas else ""
    notes.append(f"malloc: {now.malloc}{arenas} · Python's small objects: {now.python} · {view.sample.threads} threads")
    add_field(embed, "Sources", "\n".join(notes))
    embed.set_footer(text=f"sample of {view.sample.at:%Y-%m-%d %H:%M:%S} UTC")
    return fit_embed(embed)
