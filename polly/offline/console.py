"""Offline console: a real bot inside SimCord's simulated Discord, driven from a prompt.

Any bot: Polly's own (`python -m bot --offline`) or yours (`python -m polly.offline MODULE:ATTR`),
with the memory extension loaded, real `/proc` readings and the real database. You are the bot's
owner in a guild whose #ops channel is the alert channel; type what you would type in Discord:
`/mem` commands and the bot's own slash commands alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import discord
from discord import app_commands
from discord.ext import commands

from polly.ext.cog import memory_cog
from polly.ext.replies import answered_in_discord
from polly.offline import demo_leak
from polly.offline.console_input import (
    ConsoleInputError,
    console_lines,
    parse_duration,
    read_count,
    render_message,
    split_command,
)
from polly.offline.console_leaks import BOT_LEAK_VERBS, BotLeaks
from polly.startup_errors import EXIT_CONFIG, StartupError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "The offline console needs SimCord, the simulated Discord: install polly-memory-ops[offline] "
    "(`pip install 'polly-memory-ops[offline]'` or `uv sync --extra offline`), then try again."
)
# Counts N failures somewhere the memory layer tracks and says where (`:leak N`).
LeakFailures = Callable[[int], str]
HELP = """\
Type slash commands as in Discord, options as name:value (quote values with spaces):
  /mem stats                          /mem cleanup dry_run:true
  /mem pool                           /mem checkpoint label:before compare_to:"other label"
  /mem alerts channel:#ops test:true  /mem checkpoint trace:true
Console verbs:
  :advance 90m    move the simulated clock (s, m, h, d; e.g. 1h30m): the monitor loop ticks
  :channel        show the messages in #ops, the alert channel
  :leak N         record N failures in a tracked structure (Polly's message-fetch failures)
  :traffic N      N members join the guild and each posts a message in #general (caches fill)
  :leak-objects N keep N LeakyWidget objects alive in a module's global list (find them with
                  /mem checkpoint and /mem inspect type:LeakyWidget)
  :leak-tasks N   N messages in #reminders, each starting a task that never ends
  :leak-views N   N messages in #votes, each answered with buttons without a timeout
  :leak-sessions N  open N aiohttp sessions and keep them, never closed
  :reload-leaky   reload a cog whose listener a global list keeps (each reload: a survivor)
                  (find them all with /mem tasks, /mem stats and the alerts in #ops)
  :help           this text
  :quit           leave (Ctrl-D too)"""
ATTACHMENT_DIR = Path("data") / "offline"
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}

DEMO_SCRIPT = (
    ("Where memory stands now", "/mem stats"),
    ("A checkpoint before anything happens", "/mem checkpoint label:demo-start"),
    ("A leak: message fetches failing for 1,000 polls", ":leak 1000"),
    ("Three monitor ticks later the structure-fill alert fires in #ops", ":advance 3m"),
    ("An hour on, the failures are old; the alert repeats while firing", ":advance 62m"),
    ("An operator cleans up", "/mem cleanup"),
    ("The next tick resolves the alert", ":advance 1m"),
    ("What changed since the first checkpoint", "/mem checkpoint label:demo-end compare_to:demo-start"),
    ("The last hours as a picture: the leak, the alert, the cleanup", "/mem chart hours:2"),
    ("Traffic: 500 members join and post (the tour turns discord.py's caches on to show them)", ":traffic 500"),
    ("Which cache holds what", "/mem stats"),
    ("A checkpoint before the next leak", "/mem checkpoint label:hunt-start"),
    ("A leak in bot code: 5,000 objects kept alive by a global list", ":leak-objects 5000"),
    ("The comparison names the type that grew", "/mem checkpoint label:hunt-end compare_to:hunt-start"),
    ("Who holds it", "/mem inspect type:LeakyWidget"),
)


class OfflineConsole:
    """The simulated world and the commands typed into it."""

    def __init__(
        self,
        make_bot: Callable[[], commands.Bot],
        out: TextIO,
        *,
        prepare: Callable[[commands.Bot], Awaitable[None]] | None = None,
        leak: LeakFailures | None = None,
    ) -> None:
        self.make_bot = make_bot
        self.prepare = prepare  # checks before the simulated login (Polly's bot: its database)
        self.leak_failures = leak or demo_leak.record_failures
        self.out = out
        self.failed = False
        self._seen_in_ops = 0
        self._next_visitor = 1
        self.admin_guild_ids: list[int] = []
        self.bot_leaks = BotLeaks(self)

    # -- setting up the world

    async def open(self, simcord: Any) -> None:
        """Start the bot in a simulated Discord with the memory extension loaded (by the bot itself,
        or here); StartupError (after closing the bot) if either cannot start."""
        self.bot = self.make_bot()
        # What simcord.run does, in two steps: the world exists before the bot connects, so its
        # first monitor tick finds #ops, and alerts a kept database (DATABASE_URL) still holds for
        # it are posted there, not refused (SimCord's ids follow its clock: #ops keeps its id).
        self.env = simcord.Env(self.bot, check_errors=False, settle_timeout=60)
        self.guild = self.env.create_guild("Polly offline")
        self.ops = self.guild.create_text_channel("ops")
        self.general = self.guild.create_text_channel("general")
        admins = self.guild.create_role("Admins", permissions=discord.Permissions(administrator=True))
        self.you = self.guild.add_member(self.env.create_user("you"), roles=[admins])
        try:
            if self.prepare is not None:
                await self.prepare(self.bot)
            await self.env.start()
            self._virtual_time = self.env.time_context()
            self._virtual_time.__enter__()
            await self._load_memory_extension()
        except (StartupError, commands.ExtensionError):
            await self.bot.close()
            raise
        self.admin_guild_ids = list(memory_cog(self.bot).settings.memory_admin_guild_ids)
        self.bot.owner_ids = {self.you.id}  # you own this bot: an operator
        await self.you.slash(self.ops, "mem alerts", channel=self.ops)
        await self.env.settle()
        self._seen_in_ops = len(self._ops_messages())
        self._errors_seen = len(self.env.errors)

    async def _load_memory_extension(self) -> None:
        """A host that did not load the extension itself gets it here, as its owner would add it."""
        try:
            memory_cog(self.bot)
        except LookupError:
            await self.bot.load_extension("polly")
            await self.bot.tree.sync()

    async def close(self) -> None:
        self.bot_leaks.close()
        await self.bot.close()  # SimCord's teardown does not close the bot
        try:
            await self.env.shutdown()
        finally:
            self._virtual_time.__exit__(None, None, None)

    # -- running one line

    async def run_line(self, line: str) -> bool:
        """Run one console line; False when the console should stop."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        try:
            if line.startswith(":") and not await self._verb(line):
                return False
            if not line.startswith(":"):
                await self._slash(line)
        except ConsoleInputError as exc:
            self._fail(str(exc))
        except Exception as exc:  # SimCord's option checks and anything the bot raised
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._fail(message)
        self._report_bot_errors()
        self._print_new_alerts()
        return True

    def _fail(self, message: str) -> None:
        self.failed = True
        self.print(f"❌ {message}")

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def _verb(self, line: str) -> bool:
        verb, _, arg = line[1:].partition(" ")
        if verb in ("quit", "exit", "q"):
            return False
        if verb == "help":
            self.print(HELP)
        elif verb == "advance":
            seconds = parse_duration(arg or "1m")
            await self.env.advance_time(seconds)
            self.print(f"⏩ Simulated clock now {self.env.now():%Y-%m-%d %H:%M} UTC")
        elif verb == "channel":
            messages = self._ops_messages()
            self.print(f"#ops: {len(messages)} message(s)")
            for message in messages[-20:]:
                self.print(f"[#ops {message.created_at:%H:%M}] {render_message(message)}")
            self._seen_in_ops = len(messages)
        elif verb == "leak":
            self._leak(arg)
        elif verb == "traffic":
            await self._traffic(read_count(arg, verb, 10_000, "members and messages"))
        elif verb in BOT_LEAK_VERBS:
            self.print(await self.bot_leaks.run(verb, arg))
        elif verb == "leak-objects":
            count = read_count(arg, verb, 1_000_000, "objects")
            held = demo_leak.leak(count)
            where = "polly.offline.demo_leak.leaked_widgets"
            self.print(f"{count:,} LeakyWidget objects are now held by {where} ({held:,} in all)")
        else:
            raise ConsoleInputError(f"Unknown console verb ':{verb}': try :help")
        return True

    def _leak(self, arg: str) -> None:
        self.print(self.leak_failures(read_count(arg, "leak", 1_000_000, "failures")))

    async def _traffic(self, count: int) -> None:
        """Members join and each posts once; messages are created in bulk and settled once (a
        SimCord send() settles after every message, which would take minutes for thousands)."""
        first = self._next_visitor
        members = [self.guild.add_member(self.env.create_user(f"visitor{first + i}")) for i in range(count)]
        self._next_visitor += count
        for member in members:
            self.env.backend.create_message(self.general.id, member.id, f"hello from {member.name}")
        await self.env.settle()
        self.print(f"{count:,} members joined and posted one message each in #general")

    async def _slash(self, line: str) -> None:
        words, raw = split_command(line)
        command = self._find_command(words)
        name = command.qualified_name
        options = {key: self._convert(command, key, value) for key, value in raw.items()}
        self.print(f"── /{name} ──")
        result = await self.you.slash(self.ops, name, **options)
        for message in [result.response, *result.followups]:
            if message is not None:
                self.print(render_message(message, ephemeral=result.ephemeral))
                self._save_attachments(message)

    def _find_command(self, words: list[str]) -> app_commands.Command:
        if not words:
            raise ConsoleInputError("Type a slash command, e.g. /mem stats, or :help")
        scopes = [None, *(discord.Object(g) for g in self.admin_guild_ids)]
        root = next((c for s in scopes if (c := self.bot.tree.get_command(words[0], guild=s))), None)
        node: Any = root
        for word in words[1:]:
            node = node.get_command(word) if isinstance(node, app_commands.Group) else None
        if not isinstance(node, app_commands.Command):
            known = ", ".join(f"/{c}" for c in self.command_names())
            raise ConsoleInputError(f"Unknown command '/{' '.join(words)}': try one of {known}")
        return node

    def command_names(self) -> list[str]:
        names = []
        for command in self.bot.tree.walk_commands():
            if isinstance(command, app_commands.Command):
                names.append(command.qualified_name)
        for guild_id in self.admin_guild_ids:
            for command in self.bot.tree.walk_commands(guild=discord.Object(guild_id)):
                if isinstance(command, app_commands.Command):
                    names.append(command.qualified_name)
        return sorted(set(names))

    def _convert(self, command: app_commands.Command, key: str, value: str) -> Any:
        parameter = next((p for p in command.parameters if p.name == key), None)
        if parameter is None:
            allowed = ", ".join(p.name for p in command.parameters) or "none"
            raise ConsoleInputError(f"/{command.qualified_name} has no option '{key}' (options: {allowed})")
        kind = parameter.type
        if kind == discord.AppCommandOptionType.boolean:
            word = value.lower()
            if word not in TRUE_WORDS | FALSE_WORDS:
                raise ConsoleInputError(f"Option '{key}' expects true or false, not '{value}'")
            return word in TRUE_WORDS
        if kind in (discord.AppCommandOptionType.integer, discord.AppCommandOptionType.number):
            try:
                return int(value) if kind == discord.AppCommandOptionType.integer else float(value)
            except ValueError:
                raise ConsoleInputError(f"Option '{key}' expects a number, not '{value}'") from None
        if kind == discord.AppCommandOptionType.channel:
            channel = self.guild.channels.get(value.lstrip("#"))
            if channel is None:
                names = ", ".join(f"#{n}" for n in self.guild.channels)
                raise ConsoleInputError(f"Option '{key}' expects a channel ({names}), not '{value}'")
            return channel
        return value

    # -- what the bot did

    def _ops_messages(self) -> list[Any]:
        return list(self.ops.history())

    def _print_new_alerts(self) -> None:
        messages = self._ops_messages()
        for message in messages[self._seen_in_ops :]:
            self.print(f"[#ops {message.created_at:%H:%M}] {render_message(message)}")
            self._save_attachments(message)
        self._seen_in_ops = len(messages)

    def _save_attachments(self, message: Any) -> None:
        """Attachments (charts) are written under ./data/offline/, and their path printed."""
        for attachment in getattr(message, "attachments", None) or []:
            data = self.env.backend.cdn.get(attachment.url)
            if data is None:
                continue
            ATTACHMENT_DIR.mkdir(parents=True, exist_ok=True)
            path = ATTACHMENT_DIR / f"{self.env.now():%Y%m%d-%H%M%S}-{message.id}-{attachment.filename}"
            path.write_bytes(data)
            self.print(f"📎 {attachment.filename} saved to {path}")

    def _report_bot_errors(self) -> None:
        errors = self.env.errors
        for error in errors[self._errors_seen :]:
            if answered_in_discord(error):
                continue  # the reply already said what was wrong
            self._fail(f"The bot raised {type(error).__name__}: {error}")
        self._errors_seen = len(errors)


async def _console(console: OfflineConsole, demo: bool, stdin: TextIO) -> int:
    discord_log = logging.getLogger("discord")
    level = discord_log.level
    # SimCord's import builds a probe Client with no intents; its warnings (guilds intent, voice)
    # say nothing about this bot.
    discord_log.setLevel(logging.ERROR)
    try:
        import simcord
    except ImportError:
        log.error(INSTALL_HINT)
        return EXIT_CONFIG
    finally:
        discord_log.setLevel(level)
    try:
        await console.open(simcord)
    except StartupError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except commands.ExtensionError as exc:
        cause = exc.__cause__ or exc
        log.error("The memory extension could not load: %s", str(cause).splitlines()[0] if str(cause) else cause)
        return EXIT_CONFIG
    try:
        if demo:
            for title, line in DEMO_SCRIPT:
                console.print(f"\n=== {title}\n> {line}")
                await console.run_line(line)
        else:
            interactive = stdin.isatty()
            if interactive:
                console.print("Polly offline: the real bot in a simulated Discord. :help lists what you can type.")
            async for line in console_lines(stdin, interactive, console.command_names()):
                if not interactive and line.strip():
                    console.print(f"> {line.strip()}")
                if not await console.run_line(line):
                    break
    finally:
        await console.close()
    return 1 if console.failed else 0


def run_console(
    make_bot: Callable[[], commands.Bot],
    *,
    demo: bool = False,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    prepare: Callable[[commands.Bot], Awaitable[None]] | None = None,
    leak: LeakFailures | None = None,
) -> int:
    """Run the console (or the demo tour) on the bot `make_bot` builds; 0, or 1 if any command
    failed, 2 without SimCord or when the bot or the extension cannot start as configured."""
    if logging.getLogger().level == logging.INFO:
        logging.getLogger().setLevel(logging.WARNING)  # replies, not lifecycle chatter, on screen
    console = OfflineConsole(make_bot, out or sys.stdout, prepare=prepare, leak=leak)
    return asyncio.run(_console(console, demo, stdin or sys.stdin))


@contextlib.contextmanager
def scratch_database() -> Iterator[Path]:
    """A throwaway SQLite file for one session (the tour, or any session not given a database): a
    simulated Discord is new each time, so nothing of an earlier session's (its channel ids, its
    alerts) may carry over. Removed with its folder at the end."""
    folder = Path(tempfile.mkdtemp(prefix="polly-offline-"))
    try:
        yield folder / "session.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def database_line(path: Path | None, given: str) -> str:
    """What the session's first line says of its database."""
    if path is None:
        return f"Database: {given} (kept between sessions)"
    return f"Database: a throwaway SQLite file for this session ({path}), removed at the end; set {given} to keep one"
