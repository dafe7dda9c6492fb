"""TagBot: a small third-party discord.py bot, as its author wrote it, with Polly's /mem added.

Everything here is the host's own: its prefix, intents, message cache, help command, its `cogs/`
folder loaded the usual way, and its own SQLite database with its own `polls` table. Polly is the
one line `await self.load_extension("polly")`; its settings come from POLLY_* variables.

    DISCORD_TOKEN=... python bot.py                 # online
    python -m polly.offline bot:create_bot          # offline, in a simulated Discord
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path

import discord
from discord.ext import commands

log = logging.getLogger("tagbot")

DATABASE = Path(os.environ.get("TAGBOT_DATABASE", "tagbot.db"))


def open_database(path: Path = DATABASE) -> sqlite3.Connection:
    """The bot's own data: tags, and a `polls` table that has nothing to do with Polly."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, content TEXT NOT NULL)")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS polls (id INTEGER PRIMARY KEY, title TEXT NOT NULL, yes INTEGER DEFAULT 0)"
    )
    connection.commit()
    return connection


class TagBot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.members = True
        intents.message_content = True
        super().__init__(command_prefix="!", intents=intents, max_messages=5000)
        self.database = open_database()

    async def setup_hook(self) -> None:
        # The usual loader: every module in cogs/.
        for file in sorted(Path(__file__).parent.joinpath("cogs").glob("*.py")):
            if file.stem != "__init__":
                await self.load_extension(f"cogs.{file.stem}")
        await self.load_extension("polly")  # /mem, the memory monitor and its alerts
        await self.tree.sync()

    async def close(self) -> None:
        await super().close()
        self.database.close()


def create_bot() -> TagBot:
    return TagBot()


async def main() -> None:
    discord.utils.setup_logging()
    async with create_bot() as bot:
        await bot.start(os.environ["DISCORD_TOKEN"])


if __name__ == "__main__":
    asyncio.run(main())
