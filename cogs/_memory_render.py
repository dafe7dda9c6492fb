"""Embeds for the memory cog: core results in, embeds that fit Discord's limits out
(the fitting itself is in `_discord_limits`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields as dc_fields
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from cogs._discord_limits import (
    DESCRIPTION_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_VALUE_LIMIT,
    add_field,
    clip,
    code_table,
    fit_embed,
    new_embed,
    short_name,
)
from polly.alert_store import StoredAlertEvent
from polly.alerts import ActiveAlert, AlertTransition, Thresholds, Transition
from polly.allocations import AllocationGrowth
from polly.caches import CacheCensus
from polly.checkpoints import Checkpoint, CheckpointComparison
from polly.decorators import ProfileStats
from polly.enhanced_database import PoolStatus
from polly.formatting import format_bytes, format_duration, format_size_estimate, sparkline
from polly.memory_utils import CleanupReport
from polly.monitor_cycle import MonitorHealth
from polly.samples import MemorySample
from polly.trend import Trend

if TYPE_CHECKING:
    from polly.heap_inspect import Inspection

COLOR_OK = discord.Colour.green()
COLOR_WARN = discord.Colour.orange()
COLOR_FIRING = discord.Colour.red()


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


def ago(then: datetime | None, now: datetime) -> str:
    return "never" if then is None else f"{format_duration(max(0.0, (now - then).total_seconds()))} ago"


def bar(fraction: float, width: int = 20) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


# ---------------------------------------------------------------- /mem stats


def trend_text(trend: Trend, threshold_percent: float) -> str:
    spark = sparkline(trend.recent_rss)
    if trend.slope_mib_per_hour is None:
        return f"collecting samples ({trend.samples} in the window so far)\n{spark}".strip()
    line = f"{trend.slope_mib_per_hour:+.1f} MiB/h over {format_duration(trend.span_s)} ({trend.samples} samples)"
    if trend.seconds_to_threshold is not None:
        line += f"\nreaches {threshold_percent:g} % of the limit in ~{format_duration(trend.seconds_to_threshold)}"
    return f"{line}\n`{spark}`" if spark else line


def structures_table(sample: MemorySample, limit: int = FIELD_VALUE_LIMIT) -> str:
    if not sample.structures:
        return "none registered"
    # failing ones first: an operator must see them
    ordered = sorted(sample.structures, key=lambda s: (s.failing is None, -(s.fill_percent or -1)))
    rows = [
        (short_name(s.name), "FAILING", "", "", "", clip(s.failing.split(":")[0], 20))
        if s.failing
        else (
            short_name(s.name),
            f"{s.size:,}",
            f"{s.limit:,}" if s.limit else "∞",
            percent(s.fill_percent),
            "—" if s.oldest_age_s is None else format_duration(s.oldest_age_s),
            "—" if s.estimated_bytes is None else format_size_estimate(s.estimated_bytes),
        )
        for s in ordered
    ]
    return code_table(rows, ("structure", "size", "limit", "fill", "oldest", "est. size"), limit)


def caches_text(census: CacheCensus) -> str:
    """Entries per discord.py cache, the message cache's fill, and the settings that decide them."""
    rows = [(name.replace("_", " "), f"{count:,}") for name, count in census.counts]
    if census.message_limit is None:
        messages = "message cache off (DISCORD_MAX_MESSAGES=0)"
    else:
        messages = f"message cache {percent(census.message_fill_percent)} full of {census.message_limit:,}"
    settings = (
        f"{messages} · member cache {census.member_cache} · chunk at start "
        f"{'on' if census.chunk_at_startup else 'off'}\nintents: {', '.join(census.intents) or 'none'}"
    )
    return code_table(rows, ("cache", "entries"), FIELD_VALUE_LIMIT - len(settings) - 1) + "\n" + settings


def pool_summary(pool: PoolStatus | None) -> str:
    if pool is None:
        return "no database"
    if not pool.sized:
        return f"{pool.pool_class}: no sizing; {pool.checkouts} checkouts, {pool.checked_out} out"
    return (
        f"{pool.checked_out}/{pool.pool_size} + {pool.overflow}/{pool.max_overflow} overflow in use; "
        f"peak {pool.peak_checked_out}, timeouts {pool.timeouts}"
    )


def stats_embed(
    sample: MemorySample,
    trend: Trend,
    health: MonitorHealth,
    *,
    now: datetime,
    latency_s: float | None,
    firing: int,
    tracing: bool,
    threshold_percent: float,
    monitoring: bool,
) -> discord.Embed:
    share = sample.percent_of_limit
    colour = COLOR_FIRING if share >= threshold_percent else COLOR_OK
    embed = new_embed("Memory of this bot process", colour=colour)
    add_field(
        embed,
        "Process",
        f"RSS **{format_bytes(sample.rss)}** · USS {format_bytes(sample.uss)} · VMS {format_bytes(sample.vms)}\n"
        f"swap {format_bytes(sample.swap)} · peak RSS {format_bytes(sample.peak_rss)} · "
        f"{sample.threads} threads · {sample.open_fds if sample.open_fds is not None else 'n/a'} fds",
    )
    add_field(
        embed,
        "Limit",
        f"`{bar(share / 100)}` **{share:.1f} %** of {format_bytes(sample.limit)} ({sample.limit_source}); "
        f"alert at {threshold_percent:g} %",
    )
    add_field(
        embed,
        "System",
        f"{format_bytes(sample.system_used)} used of {format_bytes(sample.system_total)} "
        f"({sample.system_percent:.1f} %), {format_bytes(sample.system_available)} available",
    )
    add_field(embed, "RSS trend", trend_text(trend, threshold_percent))
    add_field(embed, f"Tracked structures ({len(sample.structures)})", structures_table(sample))
    if sample.discord_caches is not None:
        add_field(embed, "Discord caches", caches_text(sample.discord_caches))
    gc_line = " · ".join(
        f"gen{i}: {count} pending, {runs} runs"
        for i, (count, runs) in enumerate(zip(sample.gc_counts, sample.gc_collections, strict=True))
    )
    add_field(embed, "Garbage collector", gc_line)
    add_field(embed, "Database pool", pool_summary(sample.pool) + "\nDetails: /mem pool")
    lag = "n/a" if sample.loop_lag_ms is None else f"{sample.loop_lag_ms:.1f} ms"
    latency = "n/a" if latency_s is None or latency_s != latency_s else f"{latency_s * 1000:.0f} ms"
    add_field(embed, "Event loop", f"lag {lag} · gateway latency {latency}", inline=True)
    state = "running" if monitoring else "off (MEMORY_MONITORING=false)"
    if health.backoff_factor > 1:
        state = f"backing off ({health.backoff_factor}x interval)"
    add_field(
        embed,
        "Monitor",
        f"{state}; last tick {ago(health.last_tick_at, now)}; {health.ticks} ticks, {health.errors} errors\n"
        f"{firing} alert(s) firing · tracemalloc {'on' if tracing else 'off'}",
        inline=True,
    )
    embed.set_footer(text=f"Sample of {sample.at:%Y-%m-%d %H:%M:%S} UTC")
    return fit_embed(embed)


# ---------------------------------------------------------------- /mem cleanup


def rss_change(report: CleanupReport) -> str:
    before, after = report.rss_before, report.rss_after
    if before is None or after is None:
        return "n/a"
    return f"{format_bytes(before)} → {format_bytes(after)} ({format_bytes(after - before, signed=True)})"


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
        gc = report.gc
        trimmed = "heap trimmed" if gc.trimmed else "no heap trim on this platform"
        add_field(
            embed,
            "Garbage collection",
            f"gen {gc.generation}: {gc.collected:,} objects collected, paused {format_duration(gc.pause_ms / 1000)}; "
            f"{trimmed}",
        )
    if report.dry_run:
        embed.set_footer(text="Run /mem cleanup without dry_run to apply it.")
    else:
        add_field(embed, "RSS", rss_change(report))
    return fit_embed(embed)


def cleanup_announcement(who: str, report: CleanupReport) -> discord.Embed:
    embed = new_embed(
        f"🧹 Memory cleanup run by {clip(who, 100)}",
        f"Removed {report.removed:,} entries; RSS {rss_change(report)}.",
    )
    return fit_embed(embed)


# ---------------------------------------------------------------- /mem pool


POOL_VERDICTS = {"timeouts": ("⛔", COLOR_FIRING), "near_limit": ("⚠", COLOR_WARN), "ok": ("✅", COLOR_OK)}
POOL_COUNTERS = (
    "checkouts",
    "checkins",
    "connects",
    "overflow_checkouts",
    "peak_checked_out",
    "timeouts",
    "invalidations",
)


def pool_embed(pool: PoolStatus, overflow_alert_percent: float) -> discord.Embed:
    verdict, line = pool.verdict(overflow_alert_percent)
    mark, colour = POOL_VERDICTS[verdict]
    embed = new_embed(f"Database pool: {pool.pool_class}", f"{mark} {line}", colour)
    if pool.sized:
        add_field(
            embed,
            "Configured",
            f"size {pool.pool_size} · max overflow {pool.max_overflow} · "
            f"timeout {format_duration(pool.timeout_s)} · recycle {format_duration(pool.recycle_s)}",
        )
        add_field(
            embed,
            "Now",
            f"checked out {pool.checked_out} · checked in {pool.checked_in} · overflow {pool.overflow}",
        )
    else:
        ignored = ", ".join(pool.ignored_settings) or "none"
        add_field(
            embed,
            "No sizing",
            f"{pool.pool_class} keeps no sized pool (in-memory SQLite shares one connection), so it has "
            f"no size or overflow to show. Settings it ignores: {ignored}.",
        )
    counters = [(name.replace("_", " "), f"{getattr(pool, name):,}") for name in POOL_COUNTERS]
    add_field(embed, "Counters since start", code_table(counters, ("counter", "value")))
    return fit_embed(embed)


# ---------------------------------------------------------------- /mem checkpoint


def allocation_lines(growth: Sequence[AllocationGrowth], limit: int = FIELD_VALUE_LIMIT) -> str:
    """One line per call path: size and blocks, then the path (innermost own frame first)."""
    lines = [
        f"`{format_bytes(g.size_change, signed=True)}` {g.count_change:+,} blocks · `{clip(g.where, 300)}`"
        for g in growth
    ]
    return clip("\n".join(lines), limit)


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


def checkpoint_embed(
    checkpoint: Checkpoint,
    comparison: CheckpointComparison | None,
    *,
    growth_threshold: float,
    tracing: bool,
) -> discord.Embed:
    embed = new_embed(
        f"Checkpoint '{checkpoint.label}' stored",
        f"RSS {format_bytes(checkpoint.sample.rss)} at {checkpoint.created_at:%Y-%m-%d %H:%M:%S} UTC",
    )
    if comparison is None:
        add_field(embed, "Comparison", "First checkpoint: nothing to compare yet. Run /mem checkpoint again later.")
    else:
        flagged = comparison.rss_change_percent > growth_threshold
        if flagged:
            embed.colour = COLOR_WARN
        mark = f" ⚠ above the {growth_threshold:g} % growth threshold" if flagged else ""
        uss = ""
        if comparison.uss_change is not None:
            uss_pct = comparison.uss_change_percent or 0.0
            uss = f"\nUSS {format_bytes(comparison.uss_change, signed=True)} ({uss_pct:+.1f} %)"
        rss = f"RSS {format_bytes(comparison.rss_change, signed=True)} ({comparison.rss_change_percent:+.1f} %)"
        add_field(
            embed,
            f"Since '{clip(comparison.before.label, 100)}' ({format_duration(comparison.elapsed_s)} earlier)",
            f"{rss}{mark}{uss}",
        )
        changed = [s for s in comparison.structures if s.change]
        if changed:
            rows = [
                (short_name(s.name), f"{s.before or 0:,}", f"{s.after or 0:,}", f"{s.change:+,}")
                for s in sorted(changed, key=lambda s: -abs(s.change))
            ]
            add_field(embed, "Structures", code_table(rows, ("structure", "before", "after", "change")))
        else:
            add_field(embed, "Structures", "no size changes")
        cache_changes = [c for c in comparison.caches if c.change]
        if cache_changes:
            rows = [
                (c.name.replace("_", " "), f"{c.before or 0:,}", f"{c.after or 0:,}", f"{c.change:+,}")
                for c in sorted(cache_changes, key=lambda c: -abs(c.change))
            ]
            add_field(embed, "Discord caches", code_table(rows, ("cache", "before", "after", "change")))
        if comparison.types:
            rows = [(clip(t.name, 48), f"{t.before:,}", f"{t.after:,}", f"{t.change:+,}") for t in comparison.types]
            add_field(
                embed,
                "Growing types (inspect one with /mem inspect)",
                code_table(rows, ("type", "before", "after", "change")),
            )
        gc_change = "n/a" if comparison.gc_objects_change is None else f"{comparison.gc_objects_change:+,}"
        pool_change = "n/a" if comparison.pool_checked_out_change is None else f"{comparison.pool_checked_out_change:+}"
        add_field(embed, "GC objects / pool", f"GC-tracked objects {gc_change} · pool checked out {pool_change}")
        if comparison.top_allocations:
            add_field(embed, "Top allocation growth", allocation_lines(comparison.top_allocations))
    cost = (
        "tracemalloc is **on**: allocation-heavy code runs up to ~10x slower; turn it off with trace:false."
        if tracing
        else "tracemalloc is off; trace:true records allocation sites for the next checkpoints (costly)."
    )
    add_field(embed, "Allocation tracing", cost)
    return fit_embed(embed)


# ---------------------------------------------------------------- /mem alerts and alert posts


def thresholds_table(t: Thresholds) -> str:
    rows = [(f.name, f"{getattr(t, f.name):g}") for f in dc_fields(t)]
    return code_table(rows, ("threshold", "value"))


def alerts_embed(
    channel_text: str,
    thresholds: Thresholds,
    active: Sequence[ActiveAlert],
    recent: Iterable[StoredAlertEvent],
    *,
    undelivered: int,
) -> discord.Embed:
    embed = new_embed("Memory alerts", f"Alert channel: {channel_text}", COLOR_FIRING if active else COLOR_OK)
    if active:
        lines = [
            f"🔴 **{clip(a.rule.value, 40)}** · {clip(a.subject, 60)}: {a.value:.1f} (threshold {a.threshold:g}) "
            f"since {a.since:%H:%M} UTC"
            for a in active
        ]
        add_field(embed, f"Firing ({len(active)})", clip("\n".join(lines), FIELD_VALUE_LIMIT))
    else:
        add_field(embed, "Firing", "nothing is firing")
    history = [
        f"`{e.at:%m-%d %H:%M}` {e.kind} · {clip(e.rule, 30)} · {clip(e.subject, 50)}"
        + ("" if e.delivered else " (not delivered)")
        for e in recent
    ]
    add_field(embed, "Last alert events", clip("\n".join(history), FIELD_VALUE_LIMIT) if history else "none yet")
    add_field(embed, "Thresholds", thresholds_table(thresholds))
    if undelivered:
        add_field(
            embed,
            "Waiting for delivery",
            f"{undelivered} alert(s) could not be posted yet; retried every tick.",
        )
    return fit_embed(embed)


def alert_embed(transition: AlertTransition, trend: Trend | None) -> discord.Embed:
    if transition.kind == Transition.FIRED:
        title, colour = f"🔴 {transition.title}", COLOR_FIRING
    elif transition.kind == Transition.REPEATED:
        title, colour = f"🟠 Still firing: {transition.title}", COLOR_WARN
    else:
        title, colour = f"🟢 Resolved: {transition.title}", COLOR_OK
    embed = new_embed(title, transition.detail, colour)
    add_field(embed, "Rule", f"{transition.rule.value} · {clip(transition.subject, 200)}", inline=True)
    add_field(embed, "Value / threshold", f"{transition.value:.1f} / {transition.threshold:g}", inline=True)
    if transition.kind == Transition.RESOLVED:
        lasted = (transition.at - transition.since).total_seconds()
        add_field(embed, "Lasted", format_duration(lasted), inline=True)
    else:
        if trend is not None and trend.slope_mib_per_hour is not None:
            spark = sparkline(trend.recent_rss)
            add_field(embed, "RSS trend", f"{trend.slope_mib_per_hour:+.1f} MiB/h `{spark}`")
        add_field(embed, "What to do", transition.hint)
    embed.timestamp = transition.at
    return fit_embed(embed)


TRANSITION_MARKS = {Transition.FIRED: "🔴", Transition.REPEATED: "🟠", Transition.RESOLVED: "🟢"}


def alert_summary_embed(transitions: Sequence[AlertTransition], dropped: int = 0) -> discord.Embed:
    """The alerts that waited beyond the first few, as one message: one line each, oldest first."""
    lines = [
        f"`{t.at:%m-%d %H:%M}` {TRANSITION_MARKS[t.kind]} {t.kind.value} · {t.title} · {clip(t.subject, 60)}"
        for t in transitions
    ]
    shown: list[str] = []
    budget = DESCRIPTION_LIMIT - 100
    for line in lines:
        if sum(len(x) + 1 for x in shown) + len(line) > budget:
            break
        shown.append(line)
    if len(shown) < len(lines):
        shown.append(f"… and {len(lines) - len(shown)} more: /mem alerts lists the recent ones")
    embed = new_embed(
        f"📋 {len(transitions)} more alert event(s) that could not be posted in time",
        "\n".join(shown),
        COLOR_WARN,
    )
    if dropped:
        add_field(
            embed,
            "Dropped while waiting",
            f"{dropped} older alert event(s) were dropped: more than ALERT_HISTORY_SIZE were waiting.",
        )
    return fit_embed(embed)


def backoff_embed(factor: int, interval_s: float, last_error: str | None) -> discord.Embed:
    return fit_embed(
        new_embed(
            "⚠ Memory monitor is backing off",
            f"Its last ticks failed ({clip(last_error or 'unknown error', 500)}). It now checks every "
            f"{format_duration(interval_s)} ({factor}x) and returns to normal after a good tick. "
            "See the bot's log for the tracebacks.",
            COLOR_WARN,
        )
    )


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
