"""An extension whose cog's listener is kept in `polly.offline.bot_leaks.HANDLERS`: each reload
(`bot.reload_extension("polly.offline.leaky_reload")`) leaves the old cog alive, held by that list."""

from __future__ import annotations

import discord
from discord.ext import commands

from polly.offline import bot_leaks


class GreeterCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        bot_leaks.HANDLERS.append(self.greet)  # registered with a "hook list", never removed at unload

    async def greet(self, member: discord.Member) -> None:
        await member.send("welcome")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(GreeterCog(bot))
