"""`python -m polly.offline MODULE:ATTR`: your bot, with /mem, in a simulated Discord."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable

from discord.ext import commands

from polly.ext import log_setup
from polly.offline.console import database_line, run_console, scratch_database

log = logging.getLogger("polly.offline")


class BotNotFoundError(ValueError):
    """MODULE:ATTR does not name a bot or a function returning one; the message says why."""


def find_bot(target: str) -> Callable[[], commands.Bot]:
    """A function building the bot that `MODULE:ATTR` names (a `commands.Bot`, or a callable
    returning one); BotNotFoundError with one sentence otherwise."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise BotNotFoundError(f"'{target}' is not MODULE:ATTR (for example mybot:bot or mybot.main:create_bot)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BotNotFoundError(f"cannot import {module_name} ({exc}): run from the folder that holds it") from None
    found = getattr(module, attribute, None)
    if found is None:
        raise BotNotFoundError(f"{module_name} has no attribute {attribute}")
    if isinstance(found, commands.Bot):
        return lambda: found
    if callable(found):

        def build() -> commands.Bot:
            bot = found()
            if not isinstance(bot, commands.Bot):
                raise BotNotFoundError(f"{target}() returned {type(bot).__name__}, not a discord.ext.commands.Bot")
            return bot

        return build
    raise BotNotFoundError(f"{target} is a {type(found).__name__}, not a commands.Bot nor a function returning one")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m polly.offline",
        description="Run your discord.py bot with Polly's /mem in a simulated Discord (no token, no network).",
    )
    parser.add_argument("target", help="MODULE:ATTR naming your bot, or a function that builds it (mybot:bot)")
    parser.add_argument("--demo", action="store_true", help="a short scripted tour instead of the prompt")
    args = parser.parse_args(argv)
    log_setup.setup_logging(logging.INFO)
    sys.path.insert(0, ".")  # the user's bot lives where they run this
    try:
        make_bot = find_bot(args.target)
    except BotNotFoundError as exc:
        log.error("%s", exc)
        return 2
    with contextlib.ExitStack() as session:
        scratch = None
        # A session (and the tour) keeps its checkpoints and alerts out of the bot's own memory
        # database, unless POLLY_DATABASE_URL names one.
        if args.demo or not os.environ.get("POLLY_DATABASE_URL"):
            scratch = session.enter_context(scratch_database())
            os.environ["POLLY_DATABASE_URL"] = f"sqlite+aiosqlite:///{scratch}"
        print(database_line(scratch, "POLLY_DATABASE_URL"), flush=True)
        return run_console(make_bot, demo=args.demo)


if __name__ == "__main__":
    sys.exit(main())
