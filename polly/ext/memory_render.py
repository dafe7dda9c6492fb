"""Embeds for the memory cog: core results in, embeds that fit Discord's limits out
(the fitting itself is in `_discord_limits`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from polly.caches import CacheCensus
from polly.enhanced_database import PoolStatus
from polly.ext.discord_limits import (
    COLOR_FIRING,
    COLOR_OK,
    COLOR_WARN,
    FIELD_VALUE_LIMIT,
    add_field,
    clip,
    code_table,
    fit_embed,
    new_embed,
    short_name,
)
from polly.ext.heap_render import allocation_lines
from polly.formatting import format_bytes, format_duration, format_size_estimate, sparkline
from polly.memory_ops import CheckpointResult, StatsView
from polly.samples import MemorySample
from polly.shards import ShardState, usable_latency
from polly.trend import Trend

if TYPE_CHECKING:
    pass


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
        so_far = f"{trend.samples} sample(s) over {format_duration(trend.span_s)} so far"
        return f"collecting: too few samples for a trend yet ({so_far})\n{spark}".strip()
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


SHARDS_LISTED = 8


def shards_text(shards: tuple[ShardState, ...], now: datetime) -> str:
    """One line per shard up to SHARDS_LISTED, then a summary: connected, latency, guilds."""

    def latency(s: ShardState) -> str:
        return "n/a" if s.latency_s is None else f"{s.latency_s * 1000:.0f} ms"

    def line(s: ShardState) -> str:
        if s.connected:
            return f"shard {s.shard}: ✅ {latency(s)} · {s.guilds:,} guilds"
        down = f" for {format_duration((now - s.down_since).total_seconds())}" if s.down_since else ""
        return f"shard {s.shard}: ❌ disconnected{down} · {s.guilds:,} guilds"

    down = [s for s in shards if not s.connected]
    if len(shards) <= SHARDS_LISTED:
        return "\n".join(line(s) for s in shards)
    latencies = sorted(s.latency_s for s in shards if s.latency_s is not None)
    middle = f"{latencies[len(latencies) // 2] * 1000:.0f} ms" if latencies else "n/a"
    head = (
        f"{len(shards)} shards: {len(shards) - len(down)} connected, {len(down)} down · "
        f"latency median {middle} · {sum(s.guilds for s in shards):,} guilds"
    )
    return "\n".join([head, *(line(s) for s in down[:SHARDS_LISTED])])


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
    view: StatsView,
    *,
    latency_s: float | None,
    monitoring: str,
    warnings: Sequence[str] = (),
    instance: str = "",
) -> discord.Embed:
    """`monitoring` is the monitor loop's state in a few words; `warnings` are shown as ⚠ lines."""
    sample, trend, health, now = view.sample, view.trend, view.health, view.now
    firing, tracing, threshold_percent = view.firing, view.tracing, view.threshold_percent
    shards = sample.discord_caches.shards if sample.discord_caches is not None else ()
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
    if sample.breakdown is not None:
        from polly.ext.breakdown_render import breakdown_field

        add_field(embed, "Where the RSS is", breakdown_field(sample.breakdown))
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
    if sample.container is not None or view.previous_run is not None:
        from polly.ext.container_render import container_text, previous_run_text

        if sample.container is not None:
            add_field(embed, "Container", container_text(sample.container))
        if view.previous_run is not None:
            add_field(embed, "Previous run", previous_run_text(view.previous_run))
    add_field(embed, "RSS trend", trend_text(trend, threshold_percent))
    add_field(embed, f"Tracked structures ({len(sample.structures)})", structures_table(sample))
    if sample.discord_caches is not None:
        add_field(embed, "Discord caches", caches_text(sample.discord_caches))
        if len(sample.discord_caches.shards) > 1 or (shards and shards[0].shard != 0):
            add_field(embed, "Gateway shards", shards_text(sample.discord_caches.shards, now))
    if sample.bot is not None:
        from polly.ext.bot_render import bot_field

        add_field(embed, "Bot", bot_field(sample.bot, now, sample.rss))
    gc_line = " · ".join(
        f"gen{i}: {count} pending, {runs} runs"
        for i, (count, runs) in enumerate(zip(sample.gc_counts, sample.gc_collections, strict=True))
    )
    add_field(embed, "Garbage collector", gc_line)
    add_field(embed, "Database pool", pool_summary(sample.pool) + "\nDetails: /mem pool")
    lag = "n/a" if sample.loop_lag_ms is None else f"{sample.loop_lag_ms:.1f} ms"
    measured = usable_latency(latency_s)  # discord.py says inf or nan until the first heartbeat
    latency = "not measured yet" if measured is None else f"{measured * 1000:.0f} ms"
    add_field(embed, "Event loop", f"lag {lag} · gateway latency {latency}", inline=True)
    state = monitoring
    if health.backoff_factor > 1:
        state = f"backing off ({health.backoff_factor}x interval)"
    if health.rules_not_evaluated:
        warnings = [
            *warnings,
            f"{health.rules_not_evaluated} alert rule input(s) failed in the last tick: "
            "their alerts were kept as they were (see the log)",
        ]
    if health.failed_steps:
        warnings = [
            *warnings,
            f"in the last tick, the {', '.join(health.failed_steps)} failed; the rest of the tick ran (see the log)",
        ]
    notes = "".join(f"\n⚠ {w}" for w in warnings)
    add_field(
        embed,
        "Monitor",
        f"{state}; last tick {ago(health.last_tick_at, now)}; {health.ticks} ticks, {health.errors} errors\n"
        f"{firing} alert(s) firing · tracemalloc {'on' if tracing else 'off'}{notes}",
        inline=not warnings,
    )
    where = f"instance {instance} · " if instance else ""
    # The figures are the sample's (the last tick's, or one taken for this command): say how old.
    embed.set_footer(text=f"{where}Sample of {sample.at:%Y-%m-%d %H:%M:%S} UTC, {ago(sample.at, now)}")
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


def checkpoint_embed(result: CheckpointResult) -> discord.Embed:
    checkpoint, comparison = result.stored, result.comparison
    growth_threshold, tracing = result.growth_threshold, result.tracing
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
        if comparison.bot:
            from polly.ext.bot_render import growth_table

            add_field(embed, "Bot objects that grew (details: /mem tasks)", growth_table(comparison.bot))
        gc_change = "n/a" if comparison.gc_objects_change is None else f"{comparison.gc_objects_change:+,}"
        pool_change = "n/a" if comparison.pool_checked_out_change is None else f"{comparison.pool_checked_out_change:+}"
        add_field(embed, "GC objects / pool", f"GC-tracked objects {gc_change} · pool checked out {pool_change}")
        if comparison.top_allocations:
            add_field(embed, "Top allocation growth", allocation_lines(comparison.top_allocations))
    if result.tracing_note:
        cost = result.tracing_note
    elif tracing:
        cost = "tracemalloc is **on**: allocation-heavy code runs up to ~10x slower; turn it off with trace:false."
    else:
        cost = "tracemalloc is off; trace:true records allocation sites for the next checkpoints (costly)."
    add_field(embed, "Allocation tracing", cost)
    return fit_embed(embed)
