"""The offline console's input and output: reading lines off the event loop, Tab completion, durations,
command lines and counts; and showing a message as a person reads it."""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConsoleInputError(ValueError):
    """Console input that Discord would refuse; the message says what is allowed."""


def parse_duration(text: str) -> float:
    """'90m', '1h30m', '45s', '2d' → seconds."""
    text = text.strip().lower()
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConsoleInputError(f"'{text}' is not a duration: use a number with s, m, h or d, e.g. 90m or 1h30m")
    return sum(float(n) * UNIT_SECONDS[u] for n, u in parts)


def split_command(line: str) -> tuple[list[str], dict[str, str]]:
    """'/mem checkpoint label:"a b"' → (['mem', 'checkpoint'], {'label': 'a b'})."""
    try:
        tokens = shlex.split(line.strip().removeprefix("/"))
    except ValueError as exc:
        raise ConsoleInputError(f"Could not read that line ({exc}); close your quotes") from None
    words, options = [], {}
    for token in tokens:
        name, sep, value = token.partition(":")
        if sep and name:
            options[name] = value
        elif options:
            raise ConsoleInputError(f"'{token}' follows the options: write every option as name:value")
        else:
            words.append(token)
    return words, options


def render_message(message: Any, *, ephemeral: bool = False) -> str:
    """A message as a person would read it: embeds flattened to titled sections, code blocks kept."""
    lines = []
    if ephemeral:
        lines.append("(only you can see this)")
    if message.content:
        lines.append(message.content)
    for embed in message.embeds:
        if embed.title:
            lines.append(f"■ {embed.title}")
        if embed.description:
            lines.append(embed.description)
        for field in embed.fields:
            lines.append(f"▸ {field.name}")
            lines.append(field.value)
        if embed.footer and embed.footer.text:
            lines.append(f"  {embed.footer.text}")
    return "\n".join(lines)


def read_count(arg: str, verb: str, most: int, what: str) -> int:
    try:
        count = int(arg)
    except ValueError:
        raise ConsoleInputError(f":{verb} needs a whole number of {what}, e.g. :{verb} 500") from None
    if not 1 <= count <= most:
        raise ConsoleInputError(f":{verb} takes 1 to {most:,} {what}")
    return count


CONSOLE_VERBS = (
    ":advance",
    ":channel",
    ":leak",
    ":leak-objects",
    ":leak-tasks",
    ":leak-views",
    ":leak-sessions",
    ":reload-leaky",
    ":traffic",
    ":help",
    ":quit",
)


def completions(typed: str, command_names: list[str]) -> list[str]:
    """What Tab offers for the line typed so far: slash commands and console verbs."""
    words = [f"/{name}" for name in command_names] + list(CONSOLE_VERBS)
    return [word for word in words if word.startswith(typed)]


async def read_line(read: Callable[[], str]) -> str | None:
    """One line from a blocking `read` (input() or a stream's readline), None at its end, read in a
    daemon thread so the event loop runs meanwhile: the bot's health and metrics endpoints answer
    while the console waits, and an unfinished read never keeps the process from exiting."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[str | None] = loop.create_future()

    def deliver(line: str | None) -> None:
        if not arrived.done():
            arrived.set_result(line)

    def reader() -> None:
        try:
            line: str | None = read()
        except (EOFError, OSError, ValueError):  # end of input, or stdin closed under us
            line = None
        loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=reader, name="console-input", daemon=True).start()
    return await arrived


async def console_lines(stream: TextIO, interactive: bool, command_names: list[str]) -> AsyncIterator[str]:
    if not interactive:
        while (line := await read_line(stream.readline)) is not None and line != "":
            yield line
        return
    try:
        import readline

        def complete(_text: str, state: int) -> str | None:
            matches = completions(readline.get_line_buffer(), command_names)
            return matches[state] if state < len(matches) else None

        readline.set_completer_delims("\n")  # complete the whole line: "/mem st" → "/mem stats"
        readline.set_completer(complete)
        readline.parse_and_bind("tab: complete")
    except ImportError:  # no readline on this platform: no completion, the prompt still works
        pass
    while (line := await read_line(lambda: input("polly> "))) is not None:
        yield line
