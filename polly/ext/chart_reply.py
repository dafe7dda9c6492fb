"""Charts in Discord: the embed and its PNG attachment, for /mem chart, /mem stats chart:true and
the memory and leak-trend alerts."""

from __future__ import annotations

import io

import discord

from polly.chart import Chart, memory_chart
from polly.ext.discord_limits import fit_embed, new_embed
from polly.monitor_cycle import MonitorCycle

CHART_FILENAME = "memory-chart.png"


def chart_title(instance: str, hours: float) -> str:
    return f"RSS of {instance} · last {hours:g} h"


async def make_chart(
    cycle: MonitorCycle, hours: float, instance: str, slope_mib_per_hour: float | None = None
) -> Chart:
    """ChartError (a domain error: answered as one line) when there is none to show yet;
    `slope_mib_per_hour`: an alert's own slope, projected as the alert says."""
    return await memory_chart(cycle, hours, chart_title(instance, hours), slope_mib_per_hour)


def chart_file(chart: Chart) -> discord.File:
    return discord.File(io.BytesIO(chart.png), filename=CHART_FILENAME)


def show_chart(embed: discord.Embed) -> discord.Embed:
    """The embed with the attached chart as its image."""
    embed.set_image(url=f"attachment://{CHART_FILENAME}")
    return embed


def chart_embed(chart: Chart, hours: float, instance: str) -> discord.Embed:
    return fit_embed(show_chart(new_embed(chart_title(instance, hours), chart.caption)))
