"""discord.py's log format, in colour only on a terminal.

discord.py colours its log lines when the stream is a terminal, and also whenever it runs in a
container (`is_docker()`), terminal or not: a bot in Docker writing to a file or a pipe would fill
it with escape codes. Here colour needs a terminal, and the plain format is discord.py's own.
"""

from __future__ import annotations

import logging

import discord

PLAIN_FORMAT = "[{asctime}] [{levelname:<8}] {name}: {message}"  # discord.py's, without colour
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def setup_logging(level: int = logging.INFO) -> None:
    """discord.py's `setup_logging` on stderr, colour only when stderr is a terminal."""
    handler = logging.StreamHandler()
    terminal = hasattr(handler.stream, "isatty") and handler.stream.isatty()
    if terminal:
        discord.utils.setup_logging(handler=handler, level=level, root=True)
    else:
        formatter = logging.Formatter(PLAIN_FORMAT, DATE_FORMAT, style="{")
        discord.utils.setup_logging(handler=handler, formatter=formatter, level=level, root=True)
