"""The bot object: opens the database, loads the extensions, syncs commands, closes cleanly."""

from __future__ import annotations

import functools
import logging
import pkgutil
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

import cogs
from bot.startup_errors import database_failure
from cogs._cache_census import take_census
from polly import background_tasks
from polly.alert_engine import AlertEngine
from polly.alert_store import AlertStore
from polly.alerts import Thresholds
from polly.config import Settings, load_settings
from polly.enhanced_database import Database
from polly.memory_optimizer import MemoryMonitor, set_default_monitor
from polly.memory_utils import registry
from polly.monitor_cycle import MonitorCycle

if TYPE_CHECKING:
    from bot.health import HealthServer
    from polly.fleet_cleanup import FleetCleanup
    from polly.gc_tools import CleanupReport

log = logging.getLogger(__name__)


def extension_names() -> tuple[str, ...]:
    """Every extension module in `cogs/` (modules starting with `_` are helpers, not extensions)."""
    return tuple(f"cogs.{m.name}" for m in pkgutil.iter_modules(cogs.__path__) if not m.name.startswith("_"))


MEMBER_CACHE_FLAGS = {
    "none": discord.MemberCacheFlags.none,
    "voice": lambda: discord.MemberCacheFlags(voice=True, joined=False),
    "joined": lambda: discord.MemberCacheFlags(voice=False, joined=True),
    "all": discord.MemberCacheFlags.all,
}


def discord_cache_options(settings: Settings) -> dict[str, Any]:
    """Intents and cache options for discord.py from DISCORD_* settings (validated in polly.config)."""
    intents = discord.Intents.default()
    intents.members = settings.discord_members_intent
    return {
        "intents": intents,
        # discord.py reads max_messages <= 0 as its default of 1,000: None turns the cache off.
        "max_messages": settings.discord_max_messages or None,
        "member_cache_flags": MEMBER_CACHE_FLAGS[settings.discord_member_cache](),
        "chunk_guilds_at_startup": settings.discord_chunk_guilds_at_startup,
    }


class PollyBot(commands.Bot):
    """Polly's bot; owns the settings and the database for its lifetime."""

    def __init__(self, settings: Settings) -> None:
        options = discord_cache_options(settings)
        if settings.shard_count is not None:  # ShardedPollyBot: this process runs SHARD_IDS of SHARD_COUNT
            options.update(shard_count=settings.shard_count, shard_ids=settings.shards())
        super().__init__(command_prefix=commands.when_mentioned, help_command=None, **options)
        self.settings = settings
        # When each shard of this process went down (an unsharded bot is shard 0); gone once back.
        self.shard_down_since: dict[int, datetime] = {}
        self.db = Database(settings)
        # discord.utils.utcnow: the same clock as discord.py's tasks (and SimCord's virtual one).
        self.monitor = MemoryMonitor(
            settings, self.db, clock=discord.utils.utcnow, census=functools.partial(take_census, self)
        )
        set_default_monitor(self.monitor)
        background_tasks.configure(settings)
        self.alert_store = AlertStore(self.db, settings.alert_history_size, settings.instance())
        # Alert state and due times live on the bot so reloading the cog keeps them.
        self.cycle = MonitorCycle(
            settings,
            self.monitor,
            AlertEngine(Thresholds.from_settings(settings)),
            self.alert_store,
            registry,
        )
        self.failed_extensions: dict[str, str] = {}
        self.health_server: HealthServer | None = None
        self.fleet_cleanup: FleetCleanup | None = None  # PostgreSQL: answers /mem cleanup scope:fleet

    # Gateway events (discord.py calls these methods by name): /health and /mem stats read the result.
    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.shard_down_since.setdefault(shard_id, discord.utils.utcnow())

    async def on_shard_connect(self, shard_id: int) -> None:
        self.shard_down_since.pop(shard_id, None)

    on_shard_resumed = on_shard_connect
    on_shard_ready = on_shard_connect

    async def on_disconnect(self) -> None:
        if self.shard_count is None:
            await self.on_shard_disconnect(0)

    async def on_connect(self) -> None:
        if self.shard_count is None:
            await self.on_shard_connect(0)

    on_resumed = on_connect

    async def _clean_for_the_fleet(self, who: str) -> CleanupReport:
        return await self.cycle.manual_cleanup(who, dry_run=False)

    async def open_database(self) -> None:
        """Connect and create missing tables; a StartupError saying what to check if it cannot."""
        try:
            await self.db.create_tables()
        except Exception as exc:
            log.debug("Opening the database failed", exc_info=True)
            raise database_failure(exc, self.settings) from None

    async def setup_hook(self) -> None:
        await self.open_database()
        if self.cycle.fleet is not None:  # several processes may share this database: listen for them
            from polly.fleet_cleanup import FleetCleanup

            self.fleet_cleanup = FleetCleanup(self.db, self.settings.instance(), self._clean_for_the_fleet)
            await self.fleet_cleanup.start()
        await self.monitor.refresh_checkpoint_count()
        await self.cycle.restore_firing()  # before the loop: a still-firing alert is not new
        for name in extension_names():
            try:
                await self.load_extension(name)
            except Exception as exc:
                self.failed_extensions[name] = str(exc)
                log.exception("Failed to load extension %s", name)
        await self.sync_commands()
        if self.settings.health_port is not None:
            # The HTTP server and the metrics code are imported only when the endpoints are on.
            from bot.health import HealthServer

            server = HealthServer(self)
            await server.start()  # a port in use stops start-up with HealthServerError
            self.health_server = server

    async def sync_commands(self) -> None:
        guild_ids = self.settings.memory_admin_guild_ids
        if guild_ids:
            for guild_id in guild_ids:
                try:
                    synced = await self.tree.sync(guild=discord.Object(guild_id))
                except discord.HTTPException as exc:
                    # One wrong id in MEMORY_ADMIN_GUILD_IDS must not keep the bot from starting.
                    log.error(
                        "Could not register /mem in guild %d (%s): is the bot in that guild, invited "
                        "with the applications.commands scope?",
                        guild_id,
                        exc.text or exc.status,
                    )
                    continue
                log.info("Synced %d application commands to guild %d", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("Synced %d global application commands", len(synced))

    async def close(self) -> None:
        if self.health_server is not None:
            await self.health_server.stop()
            self.health_server = None
        # Unloading the extensions (in super().close()) cancels their loops before the engine goes.
        await super().close()
        if self.cycle.fleet is not None:
            await self.cycle.fleet.leader.release()  # another process leads the fleet from its next tick
        if self.fleet_cleanup is not None:
            await self.fleet_cleanup.stop()
        await self.db.dispose()


class ShardedPollyBot(PollyBot, commands.AutoShardedBot):
    """Polly's bot over several gateway shards (SHARD_COUNT, SHARD_IDS)."""


def create_bot(settings: Settings | None = None) -> PollyBot:
    """Build the bot from `settings` (read from the environment and `.env` when None)."""
    settings = settings if settings is not None else load_settings()
    return ShardedPollyBot(settings) if settings.shard_count is not None else PollyBot(settings)
