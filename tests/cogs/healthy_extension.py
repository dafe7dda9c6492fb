"""The healthy counterparts of `polly.offline.bot_leaks`, as one extension: one HTTP session for the
cog (closed at unload), views with a timeout, tasks that end (`wait_for` with a timeout), child
processes waited for, a listener removed at unload. The healthy-day test reloads it every hour."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

TIMEOUT_S = 120


class Buttons(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=TIMEOUT_S)

    @discord.ui.button(label="Yes")
    async def yes(self, interaction: discord.Interaction, button: discord.ui.Button[Buttons]) -> None:
        await interaction.response.send_message("counted", ephemeral=True)


class HealthyCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.session: aiohttp.ClientSession | None = None
        self.reminders: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        self.session = aiohttp.ClientSession()
        self.bot.add_listener(self.greet, "on_member_join")

    async def cog_unload(self) -> None:
        self.bot.remove_listener(self.greet, "on_member_join")
        for task in self.reminders:
            task.cancel()
        if self.session is not None:
            await self.session.close()

    async def greet(self, member: discord.Member) -> None:
        return None

    @app_commands.command(name="fetch", description="Fetch something with the cog's one session")
    async def fetch(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("fetched", ephemeral=True)

    @app_commands.command(name="transcode", description="Run a short child process and wait for it")
    async def transcode(self, interaction: discord.Interaction) -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        await interaction.response.send_message("transcoded", ephemeral=True)

    async def remind_later(self, message_id: int) -> None:
        with contextlib.suppress(TimeoutError):
            await self.bot.wait_for("message", check=lambda m: m.id == message_id, timeout=TIMEOUT_S)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        name = getattr(message.channel, "name", None)
        if name == "votes":
            await message.channel.send("Vote:", view=Buttons())
        elif name == "reminders":
            task = asyncio.create_task(self.remind_later(message.id))
            self.reminders.add(task)
            task.add_done_callback(self.reminders.discard)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(HealthyCog(bot))
