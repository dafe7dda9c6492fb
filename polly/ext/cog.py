"""Memory operations for the bot's operators: the /mem commands, the monitor loop, the endpoints.

`MemoryCog` is what `load_extension("polly")` adds to any bot, and what a host may construct itself
with its own settings or database. It builds its memory layer (`polly.memory_layer`) and releases
it at unload; every number comes from that layer, and `memory_render` turns them into embeds that
fit Discord's limits. Nothing is read from or written to the host bot beyond discord.py's public
API: its commands, intents, caches and handlers stay as the host made them.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from polly.alerts import THRESHOLD_NAMES
from polly.config import Settings
from polly.decorators import profile_snapshot
from polly.enhanced_database import Database
from polly.ext.access import check_operator, is_operator
from polly.ext.background import MemoryCogBackground
from polly.ext.bot_census import DiscordBotSource
from polly.ext.cache_census import take_census
from polly.ext.loops import stop_loop
from polly.history import MAX_HOURS, ChartError
from polly.host_settings import embedded_settings
from polly.memory_layer import MemoryLayer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from polly.ext.health import HealthServer
    from polly.memory_ops import MemoryOps

log = logging.getLogger(__name__)

STATS_CHART_HOURS = 24


# The reply helpers (and discord_limits under them) load with the first command, not at start.
async def reply(interaction: discord.Interaction, content: str | None = None, **kwargs: Any) -> None:
    from polly.ext import replies

    await replies.reply(interaction, content, **kwargs)


def error_line(text: str) -> str:
    from polly.ext.discord_limits import error_line

    return error_line(text)


class MemoryCog(MemoryCogBackground, commands.Cog):
    """/mem commands, the monitor loop and alert delivery."""

    mem = app_commands.Group(
        name="mem",
        description="Memory operations of this bot (operators only)",
        guild_only=True,
        default_permissions=discord.Permissions(administrator=True),
    )

    def __init__(
        self,
        bot: commands.Bot,
        *,
        settings: Settings | None = None,
        database: Database | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        """`settings`: the POLLY_ variables when None (`polly.embedded_settings()`), so a bad one
        fails the load with a line naming it. `engine`: a host's SQLAlchemy engine, so Polly keeps
        its `polly_*` tables there and `/mem pool` watches that pool (`database`: the same, as a
        `polly.Database` the host owns). Either is closed by the host, never by Polly."""
        self.bot = bot
        if settings is None:
            settings = embedded_settings()
        # When each shard of this process went down (an unsharded bot is shard 0); gone once back.
        self.shard_down_since: dict[int, datetime] = {}
        # The process's edge: discord.py's clock (its tasks', and SimCord's virtual one) becomes
        # the one clock of the whole memory layer (polly.clock).
        self.layer = MemoryLayer(
            settings,
            database=database,
            engine=engine,
            clock=discord.utils.utcnow,  # noqa: TID251
            census=functools.partial(take_census, bot, self.shard_down_since),
            bot=DiscordBotSource(bot),
        )
        self.settings = self.layer.settings
        self.monitor = self.layer.monitor
        self.cycle = self.layer.cycle
        self.store = self.layer.store
        self.ticking = False  # a tick is running (and may be in a database call)
        self.health_server: HealthServer | None = None

    async def cog_load(self) -> None:
        try:
            await self.layer.open()  # a StartupError (one line naming the setting) fails the load
            await self._start()
        except BaseException:
            await self.cog_unload()
            raise

    async def _start(self) -> None:
        if self.settings.memory_monitoring:
            self.monitor_loop.change_interval(seconds=self.settings.memory_check_interval_seconds)
            self.monitor_loop.start()
            log.info("Memory monitor started (every %.0f s)", self.settings.memory_check_interval_seconds)
        if self.settings.health_port is not None:
            # The HTTP server and the metrics code are imported only when the endpoints are on.
            from polly.ext.health import HealthServer

            server = HealthServer(self.bot, self.layer, self.shard_down_since)
            await server.start()  # a port in use fails the load with HealthServerError
            self.health_server = server

    async def cog_unload(self) -> None:
        """Stop the loops and the endpoints, release the memory layer: nothing stays behind."""
        await stop_loop(self.monitor_loop, busy=self.ticking)
        if self.health_server is not None:
            await self.health_server.stop()
            self.health_server = None
        await self.layer.close()
        from polly.off_loop import stop_worker

        stop_worker()

    # ------------------------------------------------------------ commands

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Every /mem command is for the bot's operators only (refused ones get an ephemeral line)."""
        return await check_operator(self.bot, interaction, self.settings)

    @property
    def ops(self) -> MemoryOps:
        """The use cases, one call per command (loaded with the first command)."""
        return self.layer.ops

    @property
    def alert_channel_id(self) -> int | None:
        """The alert channel in force (the core's: it outlives this cog)."""
        return self.layer.alert_settings.channel_id

    @mem.command(name="stats", description="Process memory, limit, trend, tracked structures, pool and loop lag")
    @app_commands.describe(chart="Attach the chart of the last 24 hours")
    async def stats(self, interaction: discord.Interaction, chart: bool = False) -> None:
        """Show the latest memory sample of this bot process."""
        from polly.ext import memory_render as render  # renderers load with the first command

        if chart:  # drawing takes a moment
            await interaction.response.defer(ephemeral=True, thinking=True)
        view = self.ops.stats()
        embed = render.stats_embed(
            view,
            latency_s=self.bot.latency,
            monitoring=self.monitor_state(),
            warnings=[w for w in (self.endpoints_exposure(),) if w],
            instance=self.settings.instance(),
        )
        if chart:
            await self._reply_with_chart(interaction, embed, STATS_CHART_HOURS)
        else:
            await reply(interaction, embed=embed)

    async def _reply_with_chart(self, interaction: discord.Interaction, embed: discord.Embed, hours: int) -> None:
        from polly.ext.chart_reply import chart_file, make_chart, show_chart  # charts: loaded when first asked for

        try:
            drawn = await make_chart(self.cycle, hours, self.settings.instance())
        except ChartError as exc:  # the stats still answer; the chart's absence is explained
            await reply(interaction, error_line(str(exc)), embed=embed)
            return
        await reply(interaction, embed=show_chart(embed), file=chart_file(drawn))

    @mem.command(name="chart", description="RSS over time as a picture: limit, threshold, trend, alerts, cleanups")
    @app_commands.describe(hours=f"Hours to show, 1-{MAX_HOURS} (default 24)")
    async def chart(self, interaction: discord.Interaction, hours: app_commands.Range[int, 1, MAX_HOURS] = 24) -> None:
        """Draw the memory chart (in a short-lived process: the bot's memory does not notice)."""
        from polly.ext.chart_reply import chart_embed, chart_file, make_chart

        await interaction.response.defer(ephemeral=True, thinking=True)
        drawn = await make_chart(self.cycle, hours, self.settings.instance())
        await reply(interaction, embed=chart_embed(drawn, hours, self.settings.instance()), file=chart_file(drawn))

    def monitor_state(self) -> str:
        if not self.settings.memory_monitoring:
            return "off (MEMORY_MONITORING=false)"
        return "running" if self.monitor_loop.is_running() else "stopped (see the log)"

    def endpoints_exposure(self) -> str | None:
        server = self.health_server
        return self.settings.endpoints_exposure(server.port if server is not None else None)

    @mem.command(name="cleanup", description="Clean every tracked structure and run a full garbage collection")
    @app_commands.describe(
        dry_run="Only report what would be removed; change nothing",
        scope="This process (default) or every process sharing the database",
    )
    @app_commands.choices(scope=[app_commands.Choice(name=n, value=n) for n in ("process", "fleet")])
    async def cleanup(self, interaction: discord.Interaction, dry_run: bool = False, scope: str = "process") -> None:
        """Clean the tracked structures, collect garbage and trim the heap."""
        from polly.ext import cleanup_render  # renderers load with the first command

        self.ops.ensure_cleanup_possible()  # refused at once, before the deferral
        await interaction.response.defer(ephemeral=True, thinking=True)
        who = f"{interaction.user} ({interaction.user.id})"
        result = await self.ops.cleanup(who, dry_run=dry_run, fleet=scope == "fleet")
        if result.report is None:
            from polly.ext.fleet_render import fleet_cleanup_embed

            embed = fleet_cleanup_embed(result.fleet_answers, result.fleet_missing, result.fleet_wait_s)
            await reply(interaction, embed=embed)
            return
        await reply(interaction, result.note, embed=cleanup_render.cleanup_embed(result.report))
        if not dry_run:
            await self._post_quietly(cleanup_render.cleanup_announcement(who, result.report))

    @mem.command(name="pool", description="Database pool: limits, live figures and counters")
    async def pool(self, interaction: discord.Interaction) -> None:
        """Show the database pool's configuration, live figures and counters."""
        from polly.ext import memory_render as render  # renderers load with the first command

        view = self.ops.pool()
        await reply(interaction, embed=render.pool_embed(view.pool, view.overflow_alert_percent))

    @mem.command(name="checkpoint", description="Store a memory checkpoint and compare it with an earlier one")
    @app_commands.describe(
        label="Name for this checkpoint (default: the current UTC time)",
        compare_to="Checkpoint to compare with (default: the previous one)",
        trace="Turn allocation tracing on or off for the next checkpoints (costly while on)",
    )
    async def checkpoint(
        self,
        interaction: discord.Interaction,
        label: app_commands.Range[str, 1, 100] | None = None,
        compare_to: str | None = None,
        trace: bool | None = None,
    ) -> None:
        """Store a checkpoint and show what changed since another one."""
        from polly.ext import memory_render as render  # renderers load with the first command

        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.ops.checkpoint(label, compare_to, trace)
        await reply(interaction, embed=render.checkpoint_embed(result))

    @checkpoint.autocomplete("compare_to")
    async def _checkpoint_labels(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if not await is_operator(self.bot, self.settings, interaction.user, interaction.guild):
            return []
        labels = await self.ops.checkpoint_labels(current)
        return [app_commands.Choice(name=label[:100], value=label) for label in labels]

    @mem.command(name="explain", description="Where the RSS is: Python objects, free space, native memory, files")
    @app_commands.describe(compare_to="Checkpoint to compare with (default: the newest automatic one)")
    async def explain(self, interaction: discord.Interaction, compare_to: str | None = None) -> None:
        """Break RSS down by who holds it, say which part grew and what to do about it."""
        from polly.ext import breakdown_render  # renderers load with the first command

        await interaction.response.defer(ephemeral=True, thinking=True)
        view = await self.ops.explain(compare_to)
        await reply(interaction, embed=breakdown_render.explain_embed(view))

    explain.autocomplete("compare_to")(_checkpoint_labels)

    @mem.command(name="tasks", description="What the bot keeps alive: tasks, views, sessions, survivors, children")
    async def tasks(self, interaction: discord.Interaction) -> None:
        """The bot census now: tasks by coroutine and where the oldest waits, views, HTTP sessions,
        cogs that survived their unload and who holds them, loops, listeners, child processes."""
        from polly.ext import bot_render  # renderers load with the first command

        await interaction.response.defer(ephemeral=True, thinking=True)  # a heap walk, off the loop
        view = await self.ops.tasks()
        if view is None:
            await reply(interaction, content=error_line("The bot census is not available in this process."))
            return
        await reply(interaction, embed=bot_render.tasks_embed(view, self.ops.monitor.clock()))

    @mem.command(name="inspect", description="Count a type's live objects, estimate their size, show who holds one")
    @app_commands.describe(type="A type name, e.g. Message or discord.message.Message (suggestions: what grew)")
    async def inspect(self, interaction: discord.Interaction, type: app_commands.Range[str, 1, 200]) -> None:
        """Count a type's live objects, estimate their size and show one reference chain to them."""
        from polly.ext import heap_render  # renderers load with the first command

        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.ops.inspect(type, named_roots={"bot": self.bot})
        await reply(interaction, embed=heap_render.inspect_embed(result))

    @inspect.autocomplete("type")
    async def _type_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if not await is_operator(self.bot, self.settings, interaction.user, interaction.guild):
            return []
        return [app_commands.Choice(name=name[:100], value=name[:100]) for name in self.ops.type_suggestions(current)]

    @mem.command(name="trace", description="Trace allocations with their call paths for some minutes, then post them")
    @app_commands.describe(minutes="How long to trace (1-60); the results are posted in the alert channel")
    async def trace(self, interaction: discord.Interaction, minutes: app_commands.Range[int, 1, 60]) -> None:
        """Trace allocations for a while; the top growth with call paths goes to the alert channel."""
        from polly.ext import heap_render  # renderers load with the first command

        session = self.ops.start_trace(f"{interaction.user} ({interaction.user.id})", minutes, self.post_trace)
        await reply(interaction, heap_render.trace_started_line(session, self.alert_channel_id))

    @mem.command(name="fleet", description="Every process of this bot: memory against its limit, trend, alerts")
    async def fleet(self, interaction: discord.Interaction) -> None:
        from polly.ext.fleet_render import fleet_embed

        await interaction.response.defer(ephemeral=True, thinking=True)  # PostgreSQL: reads the fleet's table
        view = await self.ops.fleet()
        embed = fleet_embed(view.members, now=view.now, silent_after_s=view.silent_after_s, shared=view.shared)
        await reply(interaction, embed=embed)

    @mem.command(name="profile", description="Calls, time and RSS change of the profiled functions")
    async def profile(self, interaction: discord.Interaction) -> None:
        """Show what each run of Polly's profiled background work costs."""
        from polly.ext import heap_render  # renderers load with the first command

        await reply(interaction, embed=heap_render.profile_embed(profile_snapshot()))

    @mem.command(name="alerts", description="Alert channel, thresholds, firing alerts and recent alert events")
    @app_commands.describe(
        channel="Post alerts in this channel from now on",
        test="Post a test message there",
        threshold="Change this alert threshold (kept in the database)",
        value="The threshold's new value",
    )
    @app_commands.choices(threshold=[app_commands.Choice(name=name, value=name) for name in THRESHOLD_NAMES])
    async def alerts(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | None = None,
        test: bool = False,
        threshold: str | None = None,
        value: float | None = None,
    ) -> None:
        """Show and configure memory alerts."""
        from polly.ext import alert_render  # renderers load with the first command
        from polly.ext.alert_delivery import ChannelSink, post_test

        # Database reads and writes, and up to ten posts when a channel is set: past Discord's three
        # seconds on a real gateway without a deferral.
        await interaction.response.defer(ephemeral=True, thinking=True)
        view = await self.ops.alerts(
            threshold=threshold,
            value=value,
            channel_id=channel.id if channel else None,
            new_channel=functools.partial(ChannelSink, self.bot, self.settings, self.cycle, channel.id)
            if channel
            else None,
        )
        notes = list(view.notes)
        if test:
            notes.append(await post_test(self.bot, view.channel_id, str(interaction.user)))
        await reply(interaction, "\n".join(notes) or None, embed=alert_render.alerts_embed(view))

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        from polly.ext.replies import answer_command_error

        await answer_command_error(interaction, error)


async def add_memory_cog(bot: commands.Bot, cog: MemoryCog) -> None:
    """Add the cog, with /mem registered only in MEMORY_ADMIN_GUILD_IDS when those are set."""
    guild_ids = cog.settings.memory_admin_guild_ids
    guilds = [discord.Object(guild_id) for guild_id in guild_ids] if guild_ids else discord.utils.MISSING
    await bot.add_cog(cog, guilds=guilds)


def memory_cog(bot: commands.Bot) -> MemoryCog:
    """The memory cog `bot` carries (LookupError if the extension is not loaded)."""
    cog = bot.get_cog(MemoryCog.__cog_name__)
    if not isinstance(cog, MemoryCog):
        raise LookupError("the memory extension (polly) is not loaded in this bot")
    return cog
