"""/mem cleanup's reply and its announcement: each step (structures, collection, heap trim) with
what it gave back, measured by where the RSS is before and after it."""

from __future__ import annotations

import discord

from polly.ext.breakdown_render import step_changes
from polly.ext.discord_limits import add_field, clip, code_table, fit_embed, new_embed, short_name
from polly.formatting import format_bytes, format_duration
from polly.gc_tools import CleanupReport


def rss_change(report: CleanupReport) -> str:
    before, after = report.rss_before, report.rss_after
    if before is None or after is None:
        return "n/a"
    return f"{format_bytes(before)} → {format_bytes(after)} ({format_bytes(after - before, signed=True)})"


def gc_text(report: CleanupReport) -> str:
    """The collection: what it found, how long the event loop waited, what it moved, RSS."""
    gc = report.gc
    if gc is None:
        return "n/a"
    text = f"gen {gc.generation}: {gc.collected:,} objects collected, paused {format_duration(gc.pause_ms / 1000)}"
    if len(report.breakdowns) == 3:
        text += (
            f"\n{step_changes(*report.breakdowns[:2])}; RSS {format_bytes(gc.rss_after - gc.rss_before, signed=True)}"
        )
    return text


def trim_text(report: CleanupReport) -> str:
    """The trim: run off the event loop or why not, what it gave back to the OS."""
    trim = report.trim
    if trim is None or not trim.ran:
        return trim.note if trim is not None else "n/a"
    text = (
        f"off the event loop, {format_duration(trim.ms / 1000)}: RSS {format_bytes(-(trim.returned or 0), signed=True)}"
    )
    if len(report.breakdowns) == 3:
        text += f"\n{step_changes(*report.breakdowns[1:])}"
    return text


def cleanup_embed(report: CleanupReport) -> discord.Embed:
    verb = "would remove" if report.dry_run else "removed"
    title = "Cleanup dry run: nothing was changed" if report.dry_run else "Cleanup done"
    embed = new_embed(title, f"{verb} **{report.removed:,}** entries in {len(report.rows)} structures")
    rows = [
        (short_name(r.name), f"{r.before:,}", f"{r.after:,}", f"{r.removed:,}")
        for r in sorted(report.rows, key=lambda r: -r.removed)
    ]
    if rows:
        add_field(embed, "Structures", code_table(rows, ("structure", "before", "after", "removed")))
    if report.gc is not None:
        add_field(embed, "Garbage collection", gc_text(report))
    if report.trim is not None and not report.dry_run:
        add_field(embed, "Heap trim (malloc_trim)", trim_text(report))
    if report.dry_run:
        embed.set_footer(text="Run /mem cleanup without dry_run to apply it.")
    else:
        add_field(embed, "RSS", rss_change(report))
    return fit_embed(embed)


def returned_by_step(report: CleanupReport) -> str:
    """` (collection -0.4 MiB, trim -20.1 MiB)`: what each step gave back to the OS."""
    steps = []
    if report.gc is not None:
        steps.append(f"collection {format_bytes(report.gc.rss_after - report.gc.rss_before, signed=True)}")
    if report.trim is not None and report.trim.returned is not None:
        steps.append(f"trim {format_bytes(-report.trim.returned, signed=True)}")
    return f" ({', '.join(steps)})" if steps else ""


def cleanup_announcement(who: str, report: CleanupReport) -> discord.Embed:
    embed = new_embed(
        f"🧹 Memory cleanup run by {clip(who, 100)}",
        f"Removed {report.removed:,} entries; RSS {rss_change(report)}{returned_by_step(report)}.",
    )
    return fit_embed(embed)
