"""The offline console's verbs for the leaks a bot makes with its own objects (`:leak-sessions N`,
`:leak-views N`, `:leak-tasks N`, `:reload-leaky`), made by the real leaky cogs of
`polly.offline.bot_leaks`, added to the console's bot on first use: the hunt can be practised."""

from __future__ import annotations

from typing import Any

from polly.offline import bot_leaks
from polly.offline.console_input import read_count

BOT_LEAK_VERBS = ("leak-sessions", "leak-views", "leak-tasks", "reload-leaky")
MOST_MESSAGES = 1000  # each is a message SimCord delivers and settles
RELOADED = "polly.offline.leaky_reload"


class BotLeaks:
    """The leaky cogs in the console's bot, and a channel for each message-driven leak."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.added = False
        self.sessions_opened = 0

    async def run(self, verb: str, arg: str) -> str:
        """Make the leak `verb` names; say what now holds what."""
        bot, env, guild, you = self.console.bot, self.console.env, self.console.guild, self.console.you
        if not self.added:
            await bot_leaks.add_leaky_cogs(bot)
            self.votes = guild.create_text_channel("votes")
            self.reminders = guild.create_text_channel("reminders")
            await env.settle()
            self.added = True
        if verb == "reload-leaky":
            if RELOADED in bot.extensions:
                await bot.reload_extension(RELOADED)
                return f"Reloaded {RELOADED}: the old GreeterCog stays in polly.offline.bot_leaks.HANDLERS"
            await bot.load_extension(RELOADED)
            return f"Loaded {RELOADED} (its listener goes into polly.offline.bot_leaks.HANDLERS); reload it again"
        if verb == "leak-sessions":
            count = read_count(arg, verb, 100_000, "sessions")
            cog = bot_leaks.leaky(bot, bot_leaks.SessionPerCommand)
            for _ in range(count):
                self.sessions_opened += 1
                cog.open_session(self.sessions_opened)
            return f"{count:,} aiohttp sessions opened and kept, never closed ({len(cog.clients):,} in all)"
        count = read_count(arg, verb, MOST_MESSAGES, "messages")
        channel = self.votes if verb == "leak-views" else self.reminders
        for i in range(count):
            await you.send(channel, f"message {i}")
        if verb == "leak-views":
            return f"{count:,} messages in #votes: each answered with buttons that never time out"
        held = len(bot_leaks.leaky(bot, bot_leaks.TaskPerMessage).reminders)
        return f"{count:,} messages in #reminders: each started a task waiting without a timeout ({held:,} in all)"

    def close(self) -> None:
        if self.added:
            bot_leaks.leaky(self.console.bot, bot_leaks.ChildPerCommand).stop_children()
            bot_leaks.HANDLERS.clear()
