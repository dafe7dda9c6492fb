"""Tags (prefix and slash) and !snipe, which reads discord.py's message cache."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands


class Tags(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.last_deleted: dict[int, discord.Message] = {}

    @commands.command(name="tag")
    async def tag_prefix(self, ctx: commands.Context, name: str, *, content: str | None = None) -> None:
        await ctx.send(self._tag(name, content))

    @app_commands.command(name="tag", description="Show or set a tag")
    async def tag_slash(self, interaction: discord.Interaction, name: str, content: str | None = None) -> None:
        await interaction.response.send_message(self._tag(name, content))

    def _tag(self, name: str, content: str | None) -> str:
        db = self.bot.database  # type: ignore[attr-defined]
        if content is not None:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (name, content))
            db.commit()
            return f"Tag {name} saved."
        row = db.execute("SELECT content FROM tags WHERE name = ?", (name,)).fetchone()
        return row[0] if row else f"No tag {name}."

    @commands.Cog.listener()
    async def on_message_delete(self, message: discord.Message) -> None:
        self.last_deleted[message.channel.id] = message

    @commands.command()
    async def snipe(self, ctx: commands.Context) -> None:
        message = self.last_deleted.get(ctx.channel.id)
        await ctx.send(f"{message.author.name} said: {message.content}" if message else "Nothing to snipe.")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Tags(bot))
