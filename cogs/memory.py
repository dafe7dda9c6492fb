"""Memory operations for bot operators: the /mem commands and the monitor loop."""

from __future__ import annotations

import logging

from discord.ext import commands

log = logging.getLogger(__name__)


class MemoryCog(commands.Cog):
    """Placeholder until the memory core lands."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(MemoryCog(bot))
