"""Renders of the bot census: the /mem stats "Bot" field, /mem tasks, a comparison's growth."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import discord

from polly.bot_census import OTHER, BotCensus
from polly.ext.discord_limits import COLOR_WARN, add_field, clip, code_table, fit_embed, new_embed
from polly.formatting import format_bytes, format_duration
from polly.heap_types import TypeGrowth
from polly.memory_ops import TasksView

WAITS_SHOWN = 3  # kinds whose oldest task's frames /mem tasks shows


def short(name: str) -> str:
    """`polly.offline.bot_leaks.VoteButtons` → `VoteButtons`; task kinds are already short."""
    return name.rsplit(".", 1)[-1] if "." in name and " " not in name and "<" not in name else name


def sessions_text(census: BotCensus, now: datetime) -> str:
    s = census.sessions
    if s is None:
        return "sessions not counted yet (at the next checkpoint, or /mem tasks)"
    when = f"counted {format_duration((now - census.sessions_at).total_seconds())} ago" if census.sessions_at else ""
    own = f", {s.discord} discord.py's" if s.discord else ""
    return f"{s.total:,} HTTP sessions ({s.unclosed:,} unclosed{own}) · {s.connectors_open:,} connectors open · {when}"


def children_text(census: BotCensus, rss: int | None = None) -> str:
    if census.children is None:
        return "children unavailable (no /proc)"
    if not census.children:
        return "no child processes"
    total = census.children_rss or 0
    tree = f"; with the bot {format_bytes(total + rss)}" if rss is not None else ""
    return f"{len(census.children):,} child process(es) {format_bytes(total)}{tree}"


def bot_field(census: BotCensus, now: datetime, rss: int | None = None) -> str:
    """One compact field for /mem stats."""
    views = f"{census.view_total:,} views"
    if census.no_timeout_views:
        views += f" ({census.no_timeout_views:,} without a timeout)"
    survivors = "no survivors"
    if census.survivors:
        names = ", ".join(f"{short(s.name)} x{s.count}" for s in census.survivors[:3])
        survivors = f"⚠ {census.survivor_total:,} survivor(s): {names}"
    lines = [
        f"{census.task_total:,} tasks · {views} · {len(census.loops)} loops",
        sessions_text(census, now),
        f"{survivors} · {children_text(census, rss)}",
        "Details: /mem tasks",
    ]
    return "\n".join(lines)


def growth_table(grown: Sequence[TypeGrowth]) -> str:
    rows = [(clip(g.name, 48), f"{g.before:,}", f"{g.after:,}", f"{g.change:+,}") for g in grown]
    return code_table(rows, ("kind", "before", "after", "change"))


def tasks_embed(view: TasksView, now: datetime) -> discord.Embed:
    census = view.census
    grown = {g.name: g.change for g in view.grown}
    since = f"since '{view.before.label}'" if view.before is not None else "no checkpoint to compare with yet"
    embed = new_embed(
        "What the bot keeps alive",
        f"{census.task_total:,} asyncio tasks · {census.view_total:,} views · "
        f"{census.survivor_total:,} survivor(s) · growth {since}",
    )
    if any(grown.get(f"survivor {s.name}") for s in census.survivors) or census.survivors:
        embed.colour = COLOR_WARN
    rows = [
        (clip(t.name, 52), f"{t.count:,}", format_duration(t.oldest_s), f"{grown.get(f'task {t.name}', 0):+,}")
        for t in census.tasks
    ]
    add_field(
        embed, "Tasks by coroutine (oldest: seen alive for)", code_table(rows, ("coroutine", "n", "oldest", "grew"))
    )
    waiting = sorted(
        (t for t in census.tasks if t.waits and t.name != OTHER),
        key=lambda t: (-grown.get(f"task {t.name}", 0), -t.count),
    )[:WAITS_SHOWN]
    if waiting:
        lines = [f"**{clip(t.name, 80)}**\n" + "\n".join(f"`{clip(w, 150)}`" for w in t.waits) for t in waiting]
        add_field(embed, "Where the oldest of each waits (growing kinds first)", "\n".join(lines))
    if census.views:
        view_rows = [
            (clip(short(v.name), 30), f"{v.count:,}", f"{v.no_timeout:,}", f"{v.persistent:,}", f"{v.per_message:,}")
            for v in census.views
        ]
        table = code_table(view_rows, ("view", "n", "no timeout", "persistent", "per message"))
        add_field(embed, f"Views ({census.dynamic_items} dynamic item classes)", table)
    else:
        add_field(embed, "Views", f"none stored · {census.dynamic_items} dynamic item classes")
    add_field(embed, "HTTP sessions", sessions_text(census, now))
    if census.survivors:
        lines = [
            f"⚠ **{clip(s.name, 100)}** ({s.kind}) x{s.count}, unloaded {s.unloaded_at:%H:%M:%S} UTC\n"
            + (f"held by `{clip(' → '.join(s.chain), 400)}`" if s.chain else "holder not found within the time box")
            for s in census.survivors[:5]
        ]
        add_field(embed, "Survivors: cogs and extensions alive after their unload", "\n".join(lines))
    else:
        add_field(embed, "Survivors", "none: every unloaded cog and extension was freed")
    loops = ", ".join(f"{clip(name, 60)}{f' x{n}' if n > 1 else ''}" for name, n in census.loops) or "none"
    listeners = ", ".join(f"{event} {n}" for event, n in census.listeners) or "none"
    add_field(embed, "Running loops · extra listeners", f"loops: {loops}\nlisteners: {listeners}")
    children = children_text(census, view.rss)
    if census.children:
        children += "\n" + ", ".join(f"{c.name} ({c.pid}) {format_bytes(c.rss)}" for c in census.children[:10])
    add_field(embed, "Child processes", children)
    embed.set_footer(text=f"Census of {now:%Y-%m-%d %H:%M:%S} UTC · frames are names only, never values")
    return fit_embed(embed)
