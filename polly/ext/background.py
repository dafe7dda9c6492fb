"""The memory cog's background work: the monitor loop, posting to the alert channel (alerts, the
time-boxed trace's results), and the gateway events that say when a shard went down (for /health and /mem stats).

A mixin of `MemoryCog` (discord.py collects listeners and loops from a cog's bases too), kept apart
from the commands: what runs by itself, not what an operator types."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

from polly import clock
from polly.samples import measure_loop_lag

if TYPE_CHECKING:
    from polly.allocation_trace import TraceSession
    from polly.allocations import AllocationGrowth
    from polly.config import Settings
    from polly.ext.alert_delivery import ChannelSink
    from polly.memory_layer import MemoryLayer
    from polly.memory_optimizer import MemoryMonitor
    from polly.monitor_cycle import MonitorCycle

log = logging.getLogger(__name__)


class MemoryCogBackground:
    """Loops, alert posting and gateway listeners of the memory cog (set up by MemoryCog.__init__)."""

    bot: commands.Bot
    layer: MemoryLayer
    settings: Settings
    monitor: MemoryMonitor
    cycle: MonitorCycle
    ticking: bool
    shard_down_since: dict[int, datetime]

    # ------------------------------------------------------------ gateway events (for /health, /mem stats)

    @commands.Cog.listener()
    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.shard_down_since.setdefault(shard_id, clock.now())

    @commands.Cog.listener()
    async def on_shard_connect(self, shard_id: int) -> None:
        self.shard_down_since.pop(shard_id, None)

    @commands.Cog.listener()
    async def on_shard_resumed(self, shard_id: int) -> None:
        self.shard_down_since.pop(shard_id, None)

    @commands.Cog.listener()
    async def on_shard_ready(self, shard_id: int) -> None:
        self.shard_down_since.pop(shard_id, None)

    @commands.Cog.listener()
    async def on_disconnect(self) -> None:
        if self.bot.shard_count is None:
            self.shard_down_since.setdefault(0, clock.now())

    @commands.Cog.listener()
    async def on_connect(self) -> None:
        if self.bot.shard_count is None:
            self.shard_down_since.pop(0, None)

    @commands.Cog.listener()
    async def on_resumed(self) -> None:
        if self.bot.shard_count is None:
            self.shard_down_since.pop(0, None)

    # ------------------------------------------------------------ the monitor loop

    @tasks.loop(seconds=60)
    async def monitor_loop(self) -> None:
        self.ticking = True
        try:
            await self._tick()
        finally:
            self.ticking = False

    async def _tick(self) -> None:
        try:
            result = await self.cycle.tick(await measure_loop_lag())
        except Exception as exc:
            log.exception("Memory monitor tick failed")
            change = self.cycle.record_failure(exc)
            if change is not None:
                self.monitor_loop.change_interval(seconds=change.interval_s)
                if change.entering:
                    from polly.ext import alert_render

                    await self._post_quietly(alert_render.backoff_embed(change.factor, change.interval_s, str(exc)))
            return
        change = self.cycle.record_success(result.sample.at)
        if change is not None:
            self.monitor_loop.change_interval(seconds=change.interval_s)
        if result.database_incident is not None:
            from polly.ext import alert_render

            await self._post_quietly(alert_render.database_file_embed(result.database_incident))
        await self.deliver_alerts()

    async def post_trace(self, session: TraceSession, growth: tuple[AllocationGrowth, ...]) -> None:
        """The time-boxed trace ended (on the core's timer): post its results."""
        from polly.ext import heap_render

        minutes = (session.ends_at - session.started_at).total_seconds() / 60
        if not await self._post_quietly(heap_render.trace_embed(session.who, minutes, growth)):
            log.warning("The allocation trace ended but its results could not be posted (see above)")

    @monitor_loop.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    # ------------------------------------------------------------ alert delivery

    async def deliver_alerts(self) -> int:
        """Post what waits (the core's outbox decides what and in which order; the channel is the
        sink); whatever goes wrong, the loop lives and the alerts stay queued."""
        return await self._deliver_to(self.layer.alert_settings.channel_id)

    async def _deliver_to(self, channel_id: int | None) -> int:
        def channel_sink() -> ChannelSink:
            from polly.ext.alert_delivery import ChannelSink  # loaded with the first alert to post

            return ChannelSink(self.bot, self.settings, self.cycle, channel_id)

        try:
            return await self.cycle.alerts.deliver(channel_sink)
        except Exception:
            log.exception("Alert delivery failed unexpectedly")
            self.cycle.alerts.failed_unexpectedly()
            return 0

    async def _post_quietly(self, embed: discord.Embed) -> bool:
        """Post a notice to the alert channel; never raises (the log has the reason)."""
        try:
            from polly.ext.alert_delivery import alert_channel

            channel = await alert_channel(self.bot, self.layer.alert_settings.channel_id)
            if channel is None:
                return False
            await channel.send(embed=embed)
            return True
        except (discord.HTTPException, TypeError) as exc:
            log.warning("Could not post to the alert channel %s: %s", self.layer.alert_settings.channel_id, str(exc))
            return False
        except Exception:
            log.exception("Could not post to the alert channel %s", self.layer.alert_settings.channel_id)
            return False
