"""The leaks bot authors actually make with their own objects, made on purpose: the offline
console's `:leak-sessions`, `:leak-views`, `:leak-tasks`, `:reload-leaky`, and the tests' leaky cogs.

Each is a real discord.py cog doing what the bug reports describe: a new `aiohttp.ClientSession`
per command (kept, never closed), a view without a timeout per message, a task per message that
never ends (kept in a set, the asyncio docs' pattern without the `discard`), a child process per
command left running, and (in `polly.offline.leaky_reload`) a cog whose listener is kept in this
module's `HANDLERS` list, so every reload leaves the old cog alive.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

# What the reloaded cog's listener is kept in: a module-level list that outlives every reload.
HANDLERS: list[Any] = []


class SessionPerCommand(commands.Cog):
    """`/fetch`: a new client session for each call, kept by the call's id and never closed."""

    def __init__(self) -> None:
        self.clients: dict[int, aiohttp.ClientSession] = {}

    def open_session(self, key: int) -> None:
        self.clients[key] = aiohttp.ClientSession()

    @app_commands.command(name="fetch", description="Fetch something (opens a client session and keeps it)")
    async def fetch(self, interaction: discord.Interaction) -> None:
        self.open_session(interaction.id)
        await interaction.response.send_message("fetched", ephemeral=True)


class VoteButtons(discord.ui.View):
    """A view without a timeout: discord.py keeps it until the bot stops (or the bot stops it)."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Yes")
    async def yes(self, interaction: discord.Interaction, button: discord.ui.Button[VoteButtons]) -> None:
        await interaction.response.send_message("counted", ephemeral=True)


class ViewPerMessage(commands.Cog):
    """Each message in a #votes channel gets an answer with buttons that never time out."""

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot and getattr(message.channel, "name", None) == "votes":
            await message.channel.send("Vote:", view=VoteButtons())


class TaskPerMessage(commands.Cog):
    """Each message in a #reminders channel starts a task that waits for a confirmation without a
    timeout (`bot.wait_for` with a check nobody passes): it never ends."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.reminders: set[asyncio.Task[None]] = set()

    def start_reminder(self, message_id: int) -> None:
        self.reminders.add(asyncio.create_task(self.remind_later(message_id)))

    async def remind_later(self, message_id: int) -> None:
        await self.bot.wait_for("message", check=lambda m: m.reference and m.reference.message_id == message_id)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot and getattr(message.channel, "name", None) == "reminders":
            self.start_reminder(message.id)


class ChildPerCommand(commands.Cog):
    """`/transcode`: starts a child process (a stand-in for ffmpeg) and never waits for it."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def start_child(self) -> subprocess.Popen[bytes]:
        # a child that holds some memory of its own, as ffmpeg does, and waits
        code = "import sys, time; held = bytearray(8 * 1024 * 1024); sys.stdin.read()"
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
        self.children.append(child)
        return child

    def stop_children(self) -> None:
        for child in self.children:
            child.kill()
            child.wait()
        self.children.clear()

    @app_commands.command(name="transcode", description="Transcode something (starts a child process)")
    async def transcode(self, interaction: discord.Interaction) -> None:
        self.start_child()
        await interaction.response.send_message("transcoding", ephemeral=True)


async def add_leaky_cogs(bot: commands.Bot) -> None:
    """Every leaky cog above, added to `bot` (commands synced by the caller)."""
    for cog in (SessionPerCommand(), ViewPerMessage(), TaskPerMessage(bot), ChildPerCommand()):
        await bot.add_cog(cog)


def leaky(bot: commands.Bot, kind: type[commands.Cog]) -> Any:
    cog = next((c for c in bot.cogs.values() if isinstance(c, kind)), None)
    if cog is None:
        raise LookupError(f"{kind.__name__} is not loaded")
    return cog
