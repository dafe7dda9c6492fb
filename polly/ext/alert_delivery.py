"""The alert channel as the alert outbox's sink (`polly.alert_outbox`): finding the channel,
rendering an alert or a summary, attaching the chart, sending with the event's nonce.

Queue, order, summaries, marks and counters are the core's; this module only posts. One sink per
delivery, so one chart is drawn per delivery however many alerts want it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from polly.alert_outbox import OutgoingAlert, SinkUnavailable
from polly.alerts import Rule, Transition
from polly.ext import alert_render
from polly.ext.discord_limits import new_embed
from polly.history import ChartError

if TYPE_CHECKING:
    from discord.ext import commands

    from polly.chart import Chart
    from polly.config import Settings
    from polly.monitor_cycle import MonitorCycle

log = logging.getLogger(__name__)

SEND_PERMISSIONS_HINT = "give me View Channel, Send Messages and Embed Links there"
# ... and a post-mortem, whose chart shows the climb and the gap where the run died
CHARTED_RULES = (Rule.MEMORY, Rule.LEAK_TREND, Rule.PREVIOUS_RUN, Rule.THROTTLED, Rule.PRESSURE)
ALERT_CHART_HOURS = 24
NO_CHANNEL = "no alert channel (set MEMORY_ALERT_CHANNEL_ID or /mem alerts channel:)"
GONE_CHANNEL = "the alert channel {} no longer exists (choose another with /mem alerts channel:)"


async def alert_channel(bot: commands.Bot, channel_id: int | None) -> discord.abc.Messageable | None:
    """The alert channel, or None when none is set; HTTPException/TypeError when unusable."""
    if channel_id is None:
        return None
    channel = bot.get_channel(channel_id) or await bot.fetch_channel(channel_id)
    if not isinstance(channel, discord.abc.Messageable):
        raise TypeError(f"channel {channel_id} cannot receive messages")
    return channel


class ChannelSink:
    """Posts alerts in the alert channel: one delivery's worth."""

    def __init__(self, bot: commands.Bot, settings: Settings, cycle: MonitorCycle, channel_id: int | None) -> None:
        self.bot = bot
        self.settings = settings
        self.cycle = cycle
        self.channel_id = channel_id
        self.channel: discord.abc.Messageable | None = None
        self._chart: Chart | None = None
        self._chart_drawn = False
        self._chart_slope: float | None = None

    async def open(self) -> None:
        try:
            self.channel = await alert_channel(self.bot, self.channel_id)
        except discord.NotFound:  # deleted, or from another Discord (a simulated one of an earlier session)
            raise SinkUnavailable(GONE_CHANNEL.format(self.channel_id)) from None
        if self.channel is None:
            raise SinkUnavailable(NO_CHANNEL)

    async def post(self, alert: OutgoingAlert) -> None:
        """Post one alert; memory and leak-trend alerts carry the chart of the last day, and go
        without it when it cannot be drawn or attached."""
        assert self.channel is not None
        embed = alert_render.alert_embed(alert.transition, self.cycle.trend(), self.settings.instance())
        transition = alert.transition
        if transition.rule in CHARTED_RULES and transition.kind != Transition.RESOLVED and self.settings.alert_charts:
            # a leak alert's chart projects the alert's own slope: its text and chart say one ETA
            chart = await self.chart(transition.value if transition.rule is Rule.LEAK_TREND else None)
            if chart is not None:
                from polly.ext.chart_reply import chart_file, show_chart

                try:
                    await self.channel.send(
                        alert.note, embed=show_chart(embed), file=chart_file(chart), nonce=alert.nonce
                    )
                    return
                except discord.HTTPException as exc:
                    log.warning("The alert's chart could not be attached (%s); posting the alert without it", str(exc))
                    embed.set_image(url=None)
        await self.channel.send(alert.note, embed=embed, nonce=alert.nonce)

    async def post_summary(self, alerts: Sequence[OutgoingAlert], dropped: int, nonce: str) -> None:
        assert self.channel is not None
        note = next((a.note for a in alerts if a.note), None)
        embed, complete = alert_render.alert_summary([a.transition for a in alerts], dropped, self.settings.instance())
        if complete is None:
            await self.channel.send(note, embed=embed, nonce=nonce)
            return
        listing = discord.File(io.BytesIO(complete.encode()), filename=alert_render.SUMMARY_FILENAME)
        await self.channel.send(note, embed=embed, file=listing, nonce=nonce)

    async def chart(self, slope_mib_per_hour: float | None = None) -> Chart | None:
        if self._chart_drawn and self._chart_slope == slope_mib_per_hour:
            return self._chart
        self._chart_drawn, self._chart_slope, self._chart = True, slope_mib_per_hour, None
        from polly.ext.chart_reply import make_chart  # charts: loaded with the first alert that wants one

        try:
            instance = self.settings.instance()
            self._chart = await make_chart(self.cycle, ALERT_CHART_HOURS, instance, slope_mib_per_hour)
        except ChartError as exc:
            log.info("No chart for the alert: %s", exc)
        except Exception:
            log.exception("Drawing the alert's chart failed; posting the alert without it")
        return self._chart


async def post_test(bot: commands.Bot, channel_id: int | None, requested_by: str) -> str:
    """Post a test notice to the alert channel; one line saying how it went."""
    if channel_id is None:
        return "❌ No alert channel is set: add channel:#your-ops-channel to choose one."
    notice = new_embed("✅ Test alert", f"Requested by {requested_by}; alerts will appear here.")
    try:
        channel = await alert_channel(bot, channel_id)
        assert channel is not None
        await channel.send(embed=notice)
    except discord.Forbidden:
        return f"❌ I cannot post in <#{channel_id}>: {SEND_PERMISSIONS_HINT}."
    except (discord.NotFound, TypeError):
        return f"❌ Channel {channel_id} no longer exists: choose another with channel:."
    except discord.HTTPException as exc:
        return f"❌ Discord refused the test message ({exc.status}); try again later."
    return f"✅ Test message posted in <#{channel_id}>."
