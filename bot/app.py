"""Polly's own bot: a plain `commands.Bot` that opens its database, loads its poll upkeep and the
memory extension the way any host does, syncs its commands and closes cleanly."""

from __future__ import annotations

import logging
import pkgutil
from typing import Any

import discord
from discord.ext import commands

import cogs
from bot import models, poll_checks
from polly.config import Settings, load_settings
from polly.enhanced_database import Database
from polly.host_options import configure
from polly.startup_errors import StartupError, database_failure

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
    """Polly's bot; owns its settings and its database (polls, votes) for its lifetime.

    The memory layer is the extension's, loaded as any host loads it; `polly.configure` hands it this
    bot's settings (plain names here, not POLLY_) and database (Polly's `polly_*` tables beside the
    polls, and /mem pool watching this pool)."""

    def __init__(self, settings: Settings) -> None:
        options = discord_cache_options(settings)
        if settings.shard_count is not None:  # ShardedPollyBot: this process runs SHARD_IDS of SHARD_COUNT
            options.update(shard_count=settings.shard_count, shard_ids=settings.shards())
        super().__init__(command_prefix=commands.when_mentioned, help_command=None, **options)
        self.settings = settings
        self.db = Database(settings)
        poll_checks.configure(settings)
        self.failed_extensions: dict[str, str] = {}

    async def open_database(self) -> None:
        """Connect and create the poll tables; a StartupError saying what to check if it cannot."""
        try:
            await self.db.open_tables(models.poll_tables())
        except Exception as exc:
            log.debug("Opening the database failed", exc_info=True)
            raise database_failure(exc, self.settings) from None

    async def setup_hook(self) -> None:
        await self.open_database()
        # The memory extension first: a database or port it cannot use stops start-up (one line).
        configure(self, settings=self.settings, database=self.db)
        await self.load_extension_or_fail("polly")
        for name in extension_names():
            try:
                await self.load_extension(name)
            except Exception as exc:
                self.failed_extensions[name] = str(exc)
                log.exception("Failed to load extension %s", name)
        await self.sync_commands()

    async def load_extension_or_fail(self, name: str) -> None:
        """Load an extension Polly's bot cannot run without; its StartupError stops start-up as one line."""
        try:
            await self.load_extension(name)
        except commands.ExtensionFailed as exc:
            if isinstance(exc.original, StartupError):
                raise exc.original from None
            raise

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
        # Removing the cogs (in super().close()) stops their loops before the engine goes.
        await super().close()
        await self.db.dispose()


class ShardedPollyBot(PollyBot, commands.AutoShardedBot):
    """Polly's bot over several gateway shards (SHARD_COUNT, SHARD_IDS)."""


def create_bot(settings: Settings | None = None) -> PollyBot:
    """Build the bot from `settings` (read from the environment and `.env` when None)."""
    settings = settings if settings is not None else load_settings()
    return ShardedPollyBot(settings) if settings.shard_count is not None else PollyBot(settings)
