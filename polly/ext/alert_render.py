"""Alert posts and the /mem alerts overview; every embed fits Discord's limits."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from polly.alerts import AlertTransition, Rule, Thresholds, Transition
from polly.ext.discord_limits import (
    COLOR_FIRING,
    COLOR_OK,
    COLOR_WARN,
    DESCRIPTION_LIMIT,
    FIELD_VALUE_LIMIT,
    add_field,
    clip,
    code_table,
    fit_embed,
    new_embed,
)
from polly.formatting import format_duration, sparkline
from polly.memory_ops import AlertsView
from polly.post_mortem import VERDICT_CODES, VERDICT_TITLES, Verdict
from polly.records import field_names
from polly.sqlite_file import FileIncident
from polly.trend import Trend

# ---------------------------------------------------------------- /mem alerts and alert posts

# What each rule's value and threshold count, as alerts and /mem alerts show them.
RULE_UNITS = {
    Rule.MEMORY: "%",
    Rule.POOL_OVERFLOW: "%",
    Rule.POOL_TIMEOUT: "timeouts",
    Rule.STRUCTURE_FILL: "%",
    Rule.CHECKPOINT_GROWTH: "%",
    Rule.LEAK_TREND: "MiB/h",
    Rule.INSTANCE_SILENT: "s silent",
    Rule.THROTTLED: "hits",
    Rule.PRESSURE: "%",
    Rule.PREVIOUS_RUN: "",
    Rule.BOT_OBJECTS: "objects",
}


def with_unit(rule: Rule, value: float, *, threshold: bool = False) -> str:
    """`92.0 MiB/h`, `85.3 %`, `3 timeouts`: a rule's figure as people read it."""
    unit = RULE_UNITS[rule]
    whole = unit in ("timeouts", "hits", "s silent", "objects")
    shown = f"{value:,.0f}" if whole else (f"{value:g}" if threshold else f"{value:.1f}")
    return f"{shown} {unit}".strip()


SUMMARY_FILENAME = "alerts.txt"

# What each runtime threshold counts (the /mem alerts table's unit column).
THRESHOLD_UNITS = {
    "memory_percent": "% of the limit",
    "pool_overflow_percent": "% of DB_MAX_OVERFLOW",
    "dict_fill_percent": "% of a structure's limit",
    "checkpoint_growth_percent": "% RSS growth",
    "leak_horizon_hours": "h",
    "leak_slow_horizon_hours": "h",
    "leak_min_mib_per_hour": "MiB/h",
    "for_checks": "checks",
    "repeat_minutes": "min",
    "hysteresis_percent": "points",
    "throttled_events": "hits",
    "memory_pressure_percent": "% of a minute",
    "bot_growth_minutes": "min",
    "bot_growth_objects": "objects",
}


TRANSITION_MARKS = {
    Transition.FIRED: "🔴",
    Transition.REPEATED: "🟠",
    Transition.RESOLVED: "🟢",
    Transition.REPORTED: "💥",
}


def thresholds_table(t: Thresholds) -> str:
    rows = [(name, f"{getattr(t, name):g}", THRESHOLD_UNITS.get(name, "")) for name in field_names(type(t))]
    return code_table(rows, ("threshold", "value", "unit"))


def channel_text(channel_id: int | None) -> str:
    if channel_id is None:
        return "not set: choose one with /mem alerts channel:#your-ops-channel"
    return f"<#{channel_id}>"


def alerts_embed(view: AlertsView) -> discord.Embed:
    thresholds, active, recent, undelivered = view.thresholds, view.active, view.recent, view.waiting
    embed = new_embed(
        "Memory alerts", f"Alert channel: {channel_text(view.channel_id)}", COLOR_FIRING if active else COLOR_OK
    )
    if active:
        lines = [
            f"🔴 **{clip(a.rule.value, 40)}** · {clip(a.subject, 60)}: {with_unit(a.rule, a.value)} "
            f"(threshold {with_unit(a.rule, a.threshold, threshold=True)}) "
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


def report_embed(transition: AlertTransition, instance: str | None = None) -> discord.Embed:
    """A one-off report (the previous run's post-mortem): the verdict as the title, the story below."""
    verdict = next((v for v, code in VERDICT_CODES.items() if code == transition.value), Verdict.UNCLEAN)
    colour = COLOR_FIRING if verdict is not Verdict.UNCLEAN else COLOR_WARN
    embed = new_embed(
        f"{TRANSITION_MARKS[Transition.REPORTED]} Previous run: {VERDICT_TITLES[verdict]}", transition.detail, colour
    )
    add_field(embed, "Rule", f"{transition.rule.value} · {verdict.value}", inline=True)
    embed.timestamp = transition.at
    if instance:
        embed.set_footer(text=f"instance {instance}")
    return fit_embed(embed)


def alert_embed(transition: AlertTransition, trend: Trend | None, instance: str | None = None) -> discord.Embed:
    if transition.kind == Transition.REPORTED:
        return report_embed(transition, instance)
    if transition.kind == Transition.FIRED:
        title, colour = f"🔴 {transition.title}", COLOR_FIRING
    elif transition.kind == Transition.REPEATED:
        title, colour = f"🟠 Still firing: {transition.title}", COLOR_WARN
    else:
        title, colour = f"🟢 Resolved: {transition.title}", COLOR_OK
    embed = new_embed(title, transition.detail, colour)
    add_field(embed, "Rule", f"{transition.rule.value} · {clip(transition.subject, 200)}", inline=True)
    value, threshold = with_unit(transition.rule, transition.value), transition.threshold
    add_field(
        embed, "Value / threshold", f"{value} / {with_unit(transition.rule, threshold, threshold=True)}", inline=True
    )
    if transition.kind == Transition.RESOLVED:
        lasted = (transition.at - transition.since).total_seconds()
        # A clock that went back (a restored alert under another clock, a host's clock corrected)
        # cannot give a duration: say so rather than a negative one.
        shown = format_duration(lasted) if lasted >= 0 else "unknown (the clock went back since it fired)"
        add_field(embed, "Lasted", shown, inline=True)
    else:
        # a leak alert's own slope (its window's), so the field, the text and the chart agree
        slope = (
            transition.value if transition.rule is Rule.LEAK_TREND else (trend.slope_mib_per_hour if trend else None)
        )
        if slope is not None:
            spark = sparkline(trend.recent_rss) if trend is not None else ""
            add_field(embed, "RSS trend", f"{slope:+.1f} MiB/h" + (f" `{spark}`" if spark else ""))
        add_field(embed, "What to do", transition.hint)
    embed.timestamp = transition.at
    if instance:
        embed.set_footer(text=f"instance {instance}")
    return fit_embed(embed)


def alert_summary(
    transitions: Sequence[AlertTransition], dropped: int = 0, instance: str | None = None
) -> tuple[discord.Embed, str | None]:
    """The alerts that waited beyond the first few, as one message: one line each, oldest first;
    and, when the embed cannot name them all, the complete list as text to attach (nothing lost)."""
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
    complete = None
    if len(shown) < len(lines):
        shown.append(f"… and {len(lines) - len(shown)} more: all {len(lines)} are in the attached {SUMMARY_FILENAME}")
        complete = "\n".join(
            f"{t.at:%Y-%m-%d %H:%M:%S} UTC\t{t.kind.value}\t{t.rule.value}\t{t.subject}\t"
            f"{with_unit(t.rule, t.value)}\t{t.title}"
            for t in transitions
        )
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
    if instance:
        embed.set_footer(text=f"instance {instance}")
    return fit_embed(embed), complete


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


def database_file_embed(incident: FileIncident) -> discord.Embed:
    action = (
        "Nothing was lost."
        if not incident.lost
        else "Checkpoints, thresholds and alert events written to the old file since then are not in the new one."
    )
    embed = new_embed(
        f"⚠ Database file {incident.kind}",
        f"{incident.describe()}\n{action} If this was not you, find what removes files in "
        f"`{clip(str(incident.path.parent), 500)}` (a cleanup job, a deploy that replaces the folder).",
        COLOR_WARN if not incident.lost else COLOR_FIRING,
    )
    embed.set_footer(text=f"{incident.at:%Y-%m-%d %H:%M:%S} UTC")
    return fit_embed(embed)
