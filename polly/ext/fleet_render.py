"""/mem fleet: every process of the bot in one table, most loaded first, with totals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from polly.ext.discord_limits import (
    COLOR_OK,
    COLOR_WARN,
    DESCRIPTION_LIMIT,
    add_field,
    code_table,
    fit_embed,
    new_embed,
)
from polly.fleet import Heartbeat
from polly.formatting import format_bytes, format_duration

if TYPE_CHECKING:
    from polly.fleet_cleanup import CleanupAnswer  # imported by the bot only on PostgreSQL


def fleet_embed(members: Sequence[Heartbeat], *, now: datetime, silent_after_s: float, shared: bool) -> discord.Embed:
    ordered = sorted(members, key=lambda m: -m.percent)
    silent = [m for m in ordered if m.silent_for(now) > silent_after_s]

    def seen(m: Heartbeat) -> str:
        quiet = m.silent_for(now)
        return f"SILENT {format_duration(quiet)}" if quiet > silent_after_s else "live"

    rows = [
        (
            m.instance[:24],
            f"{m.percent:.1f} %",
            format_bytes(m.rss),
            format_bytes(m.limit),
            "n/a" if m.trend_mib_per_hour is None else f"{m.trend_mib_per_hour:+.1f}",
            str(m.alerts_firing),
            seen(m),
        )
        for m in ordered
    ]
    table = code_table(rows, ("instance", "used", "RSS", "limit", "MiB/h", "alerts", "seen"), DESCRIPTION_LIMIT)
    embed = new_embed(f"Fleet: {len(members)} instance(s)", table, COLOR_WARN if silent else COLOR_OK)
    live = [m for m in members if m.silent_for(now) <= silent_after_s]
    total_rss, total_limit = sum(m.rss for m in live), sum(m.limit for m in live)
    add_field(
        embed,
        "Totals",
        f"{len(live)} live, {len(silent)} silent (no heartbeat for {format_duration(silent_after_s)}) · "
        f"RSS {format_bytes(total_rss)} of {format_bytes(total_limit)} · "
        f"{sum(m.alerts_firing for m in live)} alert(s) firing",
    )
    if silent:
        names = ", ".join(f"{m.instance} ({format_duration(m.silent_for(now))})" for m in silent[:20])
        more = f" and {len(silent) - 20} more" if len(silent) > 20 else ""
        add_field(embed, "Silent", names + more)
    if not shared:
        embed.set_footer(text="SQLite: this process is the whole fleet (a fleet shares one PostgreSQL database)")
    return fit_embed(embed)


def fleet_cleanup_embed(answers: Sequence[CleanupAnswer], missing: Sequence[str], wait_s: float) -> discord.Embed:
    """One row per instance that answered (removed, RSS before → after), and who did not."""
    rows = [
        (
            a.instance[:24],
            "error" if a.error else f"{a.removed:,}",
            format_bytes(a.rss_before) if a.rss_before is not None else "n/a",
            format_bytes(a.rss_after) if a.rss_after is not None else "n/a",
        )
        for a in answers
    ]
    table = code_table(rows, ("instance", "removed", "RSS before", "after"), DESCRIPTION_LIMIT)
    embed = new_embed(f"Fleet cleanup: {len(answers)} answered", table, COLOR_WARN if missing else COLOR_OK)
    errors = [f"{a.instance}: {a.error}" for a in answers if a.error]
    if errors:
        add_field(embed, "Could not clean", "\n".join(errors))
    if missing:
        add_field(embed, f"No answer within {format_duration(wait_s)}", ", ".join(missing))
    return fit_embed(embed)
