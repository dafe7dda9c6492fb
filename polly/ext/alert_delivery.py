"""Posting alerts to the alert channel: exactly once, oldest first, one delivery at a time.

The database's alert events are the queue (polly.alert_store): an event is marked delivered right
after its post. An event posted whose marking failed is remembered here and never posted again.
More than INDIVIDUAL_POSTS waiting (after an outage or a restart): the oldest go one by one, the
rest as one summary message, so a channel is not flooded and nothing is dropped unannounced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from polly.alert_store import AlertStore, StoredAlertEvent
from polly.alerts import AlertTransition, Rule, Transition
from polly.ext import alert_render
from polly.ext.discord_limits import new_embed
from polly.history import ChartError
from polly.monitor_cycle import AlertEventOut, MonitorCycle

if TYPE_CHECKING:
    from discord.ext import commands

    from polly.chart import Chart
    from polly.config import Settings

log = logging.getLogger(__name__)

SEND_PERMISSIONS_HINT = "give me View Channel, Send Messages and Embed Links there"
INDIVIDUAL_POSTS = 10
CHARTED_RULES = (Rule.MEMORY, Rule.LEAK_TREND)
ALERT_CHART_HOURS = 24
QUEUE_READ = 2000  # undelivered events read at once; the table holds at most ALERT_HISTORY_SIZE


@dataclass(frozen=True)
class Pending:
    transition: AlertTransition
    event_id: int | None  # None: waiting in memory (the database refused it)
    memory: AlertEventOut | None = None


class AlertDelivery:
    """Delivers what waits; `channel_id` is read at each delivery (it can change at runtime)."""

    def __init__(
        self,
        bot: commands.Bot,
        settings: Settings,
        cycle: MonitorCycle,
        store: AlertStore,
        channel_id: Callable[[], int | None],
    ) -> None:
        self.bot = bot
        self.settings = settings
        self.cycle = cycle
        self.store = store
        self.channel_id = channel_id
        self._lock = asyncio.Lock()
        self._posted_unmarked: set[int] = set()  # posted, but the database did not take the mark yet

    async def channel(self) -> discord.abc.Messageable | None:
        """The alert channel, or None when none is set; HTTPException/TypeError when unusable."""
        channel_id = self.channel_id()
        if channel_id is None:
            return None
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"channel {channel_id} cannot receive messages")
        return channel

    async def post_test(self, requested_by: str) -> str:
        """Post a test notice to the alert channel; one line saying how it went."""
        channel_id = self.channel_id()
        if channel_id is None:
            return "❌ No alert channel is set: add channel:#your-ops-channel to choose one."
        notice = new_embed("✅ Test alert", f"Requested by {requested_by}; alerts will appear here.")
        try:
            channel = await self.channel()
            assert channel is not None
            await channel.send(embed=notice)
        except discord.Forbidden:
            return f"❌ I cannot post in <#{channel_id}>: {SEND_PERMISSIONS_HINT}."
        except (discord.NotFound, TypeError):
            return f"❌ Channel {channel_id} no longer exists: choose another with channel:."
        except discord.HTTPException as exc:
            return f"❌ Discord refused the test message ({exc.status}); try again later."
        return f"✅ Test message posted in <#{channel_id}>."

    async def deliver(self) -> int:
        """Post what waits, oldest first; return how many were delivered (never raises for Discord)."""
        async with self._lock:
            await self._retry_marks()
            pending = await self._pending()
            if not pending:
                self.cycle.delivered_all()
                return 0
            try:
                channel = await self.channel()
            except (discord.HTTPException, TypeError) as exc:
                return self._failed(exc, len(pending))
            if channel is None:
                log.warning(
                    "%d alert(s) waiting: no alert channel (set MEMORY_ALERT_CHANNEL_ID or /mem alerts channel:)",
                    len(pending),
                )
                self.cycle.health.undelivered = len(pending)
                return 0
            return await self._post(channel, pending)

    async def _post(self, channel: discord.abc.Messageable, pending: list[Pending]) -> int:
        trend = self.cycle.trend()
        instance = self.settings.instance()
        individual, rest = pending[:INDIVIDUAL_POSTS], pending[INDIVIDUAL_POSTS:]
        delivered = 0
        charts: dict[str, Chart | None] = {}  # one chart per delivery round, however many alerts want it
        try:
            for item in individual:
                embed = alert_render.alert_embed(item.transition, trend, instance)
                await self._send(channel, embed, item, charts)
                await self._mark([item])
                delivered += 1
            if rest or self.store.dropped_undelivered:
                dropped = self.store.dropped_undelivered
                summary = [p.transition for p in rest]
                await channel.send(embed=alert_render.alert_summary_embed(summary, dropped, self.settings.instance()))
                self.store.dropped_undelivered -= dropped
                await self._mark(rest)
                delivered += len(rest)
        except discord.HTTPException as exc:
            return self._failed(exc, len(pending) - delivered, delivered)
        except Exception as exc:  # a bug while rendering: the alerts stay queued, the loop lives
            log.exception("Posting alerts failed unexpectedly")
            return self._failed(exc, len(pending) - delivered, delivered)
        self.cycle.delivered_all()
        return delivered

    async def _send(
        self, channel: discord.abc.Messageable, embed: discord.Embed, item: Pending, charts: dict[str, Chart | None]
    ) -> None:
        """Post one alert; memory and leak-trend alerts carry the chart of the last day, and go
        without it when it cannot be drawn or attached."""
        transition = item.transition
        if transition.rule in CHARTED_RULES and transition.kind != Transition.RESOLVED and self.settings.alert_charts:
            if "chart" not in charts:
                charts["chart"] = await self._chart()
            chart = charts["chart"]
            if chart is not None:
                from polly.ext.chart_reply import chart_file, show_chart

                try:
                    await channel.send(embed=show_chart(embed), file=chart_file(chart))
                    return
                except discord.HTTPException as exc:
                    log.warning("The alert's chart could not be attached (%s); posting the alert without it", str(exc))
                    embed.set_image(url=None)
        await channel.send(embed=embed)

    async def _chart(self) -> Chart | None:
        from polly.ext.chart_reply import make_chart  # charts: loaded with the first alert that wants one

        try:
            return await make_chart(self.cycle, ALERT_CHART_HOURS, self.settings.instance())
        except ChartError as exc:
            log.info("No chart for the alert: %s", exc)
        except Exception:
            log.exception("Drawing the alert's chart failed; posting the alert without it")
        return None

    async def _pending(self) -> list[Pending]:
        stored: Sequence[StoredAlertEvent] = []
        try:
            stored = await self.store.undelivered(QUEUE_READ)
        except Exception:
            log.exception("Could not read the alert queue from the database; delivering what waits in memory")
        items = [Pending(e.transition(), e.id) for e in stored if e.id not in self._posted_unmarked]
        items += [Pending(e.transition, None, e) for e in list(self.cycle.outbox)]
        return sorted(items, key=lambda p: p.transition.at)

    async def _mark(self, items: Sequence[Pending]) -> None:
        for item in items:
            if item.memory is not None:
                self.cycle.outbox.remove(item.memory)
        ids = [item.event_id for item in items if item.event_id is not None]
        self._posted_unmarked.update(ids)
        await self._retry_marks()

    async def _retry_marks(self) -> None:
        if not self._posted_unmarked:
            return
        try:
            await self.store.mark_delivered(self._posted_unmarked)
            self._posted_unmarked.clear()
        except Exception:
            log.exception("Could not mark %d posted alert(s) delivered; retrying", len(self._posted_unmarked))

    def _failed(self, exc: BaseException, waiting: int, delivered: int = 0) -> int:
        self.cycle.delivery_failed(waiting)
        # str(exc), not exc: a handler that keeps records (a buffer, a test's capture) would keep the
        # exception's traceback, and through its frames this delivery and its cog, alive.
        log.warning(
            "Could not post %d alert(s) to channel %s (%s); retrying next tick", waiting, self.channel_id(), str(exc)
        )
        return delivered
