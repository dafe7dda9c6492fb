"""Reading the offline console's input: durations, command lines, counts; and showing a message."""

from __future__ import annotations

import re
import shlex
from typing import Any

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
