"""Process start-up: settings, logging, signals. Failures become one log line and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import TextIO

import discord

from bot.app import PollyBot, create_bot
from bot.startup_errors import discord_failure
from polly.config import ConfigError, Settings, load_settings
from polly.ext import log_setup
from polly.settings_spec import url_password
from polly.startup_errors import EXIT_CONFIG, StartupError

log = logging.getLogger("bot")

CLOSE_TIMEOUT_S = 10
# Shorter secrets are not redacted: "[redacted]" in place of every "ab" would garble the log and
# reveal them. HEALTH_TOKEN is refused below 16 characters; a short database password stays in the
# URL only, which is masked wherever Polly shows it.
MIN_REDACTED_LENGTH = 8
TOKEN_HINT = (
    "DISCORD_TOKEN is not set: put DISCORD_TOKEN=<your bot token> in .env (see .env.example) or in the environment"
)


class RedactSecrets(logging.Filter):
    """Replaces secrets in every record a handler emits, whatever logged them."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "[redacted]")
            record.msg, record.args = message, None
        return True


class DropVoiceWarnings(logging.Filter):
    """discord.py warns at every start that voice libraries are missing; Polly never joins voice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def setup_logging(settings: Settings | None = None) -> None:
    level = getattr(logging, settings.log_level) if settings else logging.INFO
    log_setup.setup_logging(level)
    logging.getLogger("discord.client").addFilter(DropVoiceWarnings())
    if settings is None:
        return
    secrets = [
        secret.get_secret_value() for secret in (settings.discord_token, settings.health_token) if secret is not None
    ]
    password = url_password(settings.database_url)
    if password is not None and len(password) >= MIN_REDACTED_LENGTH:
        secrets.append(password)  # never written by Polly (URLs are masked); this catches other code
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets(secrets))


async def run_until_signal(token: str, settings: Settings) -> None:
    """Run the bot until it stops or SIGINT/SIGTERM arrives, then close it cleanly."""
    bot = create_bot(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with bot:
        await bot.open_database()  # before Discord: a database that cannot open ends start-up at once
        runner = asyncio.create_task(bot.start(token), name="bot")
        stopper = asyncio.create_task(stop.wait(), name="signal")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("Shutdown signal received; closing")
            await bot.close()
            try:
                await asyncio.wait_for(runner, CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("The gateway connection did not end within %d s; cancelled it", CLOSE_TIMEOUT_S)
        else:
            stopper.cancel()
            await runner


def run_offline(
    settings: Settings, *, demo: bool = False, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    """Polly's own bot in the offline console (polly.offline), with its `:leak` recording message-fetch
    failures in the poll checks. A session not given DATABASE_URL (and the tour, which also turns
    discord.py's caches on) runs on a throwaway database, removed at the end."""
    from bot import poll_checks
    from polly.offline.console import database_line, run_console, scratch_database

    with contextlib.ExitStack() as session:
        scratch = None
        if demo or "database_url" not in settings.given:
            scratch = session.enter_context(scratch_database())
            changes: dict[str, object] = {"database_url": f"sqlite+aiosqlite:///{scratch}"}
            if demo:
                changes.update(discord_max_messages=1000, discord_members_intent=True, discord_member_cache="all")
            settings = settings.replaced(**changes)
        print(database_line(scratch, settings.variable("database_url")), file=out or sys.stdout, flush=True)
        return run_console(
            lambda: create_bot(settings),
            demo=demo,
            stdin=stdin,
            out=out,
            prepare=PollyBot.open_database,  # type: ignore[arg-type]
            leak=poll_checks.leak_failures,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Run Polly.")
    parser.add_argument(
        "--offline", action="store_true", help="run the real bot in a simulated Discord (no token needed)"
    )
    parser.add_argument("--demo", action="store_true", help="with --offline: a short scripted tour")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        setup_logging()
        log.error("%s", exc)
        return EXIT_CONFIG
    setup_logging(settings)
    if args.offline or args.demo:
        return run_offline(settings, demo=args.demo)
    if settings.discord_token is None:
        log.error(TOKEN_HINT)
        return EXIT_CONFIG
    try:
        asyncio.run(run_until_signal(settings.discord_token.get_secret_value(), settings))
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_TOKEN: copy the token again from the developer portal (Bot tab)")
        return EXIT_CONFIG
    except StartupError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except discord.PrivilegedIntentsRequired as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        failure = discord_failure(exc)
        if failure is None:
            raise  # a bug: its traceback is what helps
        log.debug("Reaching Discord failed", exc_info=True)
        log.error("%s", failure)
        return failure.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
