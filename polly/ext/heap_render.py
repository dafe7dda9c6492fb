"""Renders of the heap analysis: allocation growth with call paths, /mem inspect, /mem profile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from polly.allocation_trace import TraceSession
from polly.allocations import AllocationGrowth
from polly.decorators import ProfileStats
from polly.ext.discord_limits import (
    FIELD_COUNT_LIMIT,
    FIELD_VALUE_LIMIT,
    add_field,
    clip,
    fit_embed,
    new_embed,
)
from polly.formatting import format_bytes, format_duration

if TYPE_CHECKING:
    from polly.heap_inspect import Inspection


def allocation_lines(growth: Sequence[AllocationGrowth], limit: int = FIELD_VALUE_LIMIT) -> str:
    """One line per call path: size and blocks, then the path (innermost own frame first)."""
    lines = [
        f"`{format_bytes(g.size_change, signed=True)}` {g.count_change:+,} blocks · `{clip(g.where, 300)}`"
        for g in growth
    ]
    return clip("\n".join(lines), limit)


def trace_started_line(session: TraceSession, channel_id: int | None) -> str:
    return (
        f"🔬 Tracing allocations ({session.frames} frames each) until {session.ends_at:%H:%M} UTC. "
        f"It stops by itself and posts the top growth with call paths in <#{channel_id}> "
        "(allocation-heavy code runs slower until then)."
    )


def trace_embed(who: str, minutes: float, growth: Sequence[AllocationGrowth]) -> discord.Embed:
    embed = new_embed(
        f"🔬 Allocation trace of {format_duration(minutes * 60)} finished",
        f"Started by {clip(who, 100)}. Memory allocated during the trace and still held, by call path "
        "(innermost frame of the bot's own code first):",
    )
    if growth:
        add_field(embed, "Top growth", allocation_lines(growth))
    else:
        add_field(embed, "Top growth", "Nothing allocated during the trace is still held.")
    add_field(embed, "Next", "Take /mem checkpoint now and later, or /mem inspect a type that grew.")
    return fit_embed(embed)


# ---------------------------------------------------------------- /mem inspect


def inspect_embed(result: Inspection) -> discord.Embed:
    size = "n/a"
    if result.mean_bytes is not None:
        size = (
            f"estimated **{format_bytes(result.estimated_bytes)}** "
            f"(≈ {result.mean_bytes:,.0f} bytes each, from {result.sampled} sampled)"
        )
    embed = new_embed(f"Inspect: {result.type_name}", f"**{result.count:,}** live objects · {size}")
    chain = result.chain
    if chain is not None and chain.found:
        holder = f"```\n{chain.text()}\n```"
    elif chain is not None and chain.timed_out:
        holder = (
            f"The search stopped at its {format_duration(result.budget_s)} budget after {chain.levels} level(s): "
            "try again when the bot is quieter."
        )
    else:
        holder = "No module global or bot attribute holds the sampled objects (they may be on their way out)."
    add_field(embed, "Who holds one", holder)
    add_field(
        embed,
        "How this was measured",
        "Counted over objects the garbage collector tracks. Size: the mean of a random sample times the "
        "count; an object owns its attributes and builtin containers, not other objects it points to. "
        "Only type, attribute and key names are shown, never contents.",
    )
    embed.set_footer(text=f"took {format_duration(result.elapsed_s)} of a {format_duration(result.budget_s)} budget")
    return fit_embed(embed)


# ---------------------------------------------------------------- /mem profile


def profile_embed(rows: Sequence[tuple[str, ProfileStats]]) -> discord.Embed:
    embed = new_embed("Profiled functions", "Each call's duration and the change of RSS across it (memory_profile).")
    if not rows:
        add_field(embed, "Nothing profiled yet", "The poll-message check runs every POLL_CHECK_INTERVAL_MINUTES.")
        return fit_embed(embed)
    for name, stats in rows[: FIELD_COUNT_LIMIT - 1]:
        add_field(
            embed,
            clip(".".join(name.split(".")[-2:]), 200),  # module.function: the package adds nothing
            f"{stats.calls:,} calls · time mean {format_duration(stats.mean_s)}, max {format_duration(stats.max_s)}\n"
            f"RSS change mean {format_bytes(stats.mean_rss_delta, signed=True)}, "
            f"max {format_bytes(stats.rss_delta_max, signed=True)}",
        )
    return fit_embed(embed)
