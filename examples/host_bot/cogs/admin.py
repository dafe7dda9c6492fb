"""The owner's reload command, as many bots have one (jishaku's `jsk reload` does the same)."""

from __future__ import annotations

from discord.ext import commands


class Admin(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @commands.command()
    @commands.is_owner()
    async def reload(self, ctx: commands.Context, extension: str) -> None:
        await self.bot.reload_extension(extension)
        await ctx.send(f"Reloaded {extension}.")

    @commands.command()
    @commands.is_owner()
    async def unload(self, ctx: commands.Context, extension: str) -> None:
        await self.bot.unload_extension(extension)
        await ctx.send(f"Unloaded {extension}.")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Admin(bot))
