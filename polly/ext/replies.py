"""Answering /mem: ephemeral replies, and which errors are answered as one line."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord
from discord import app_commands

from polly.alert_settings import NoAlertChannelError
from polly.alerts import ThresholdError
from polly.allocations import TraceRunningError
from polly.checkpoints import CheckpointError
from polly.cleanups import CleanupRunningError
from polly.database_errors import is_database_outage
from polly.ext.discord_limits import error_line
from polly.heap_types import UnknownTypeError
from polly.history import ChartError

log = logging.getLogger(__name__)

APOLOGY = "Sorry, that went wrong on our side; the details are in the bot's log."
# Refusals whose message is one sentence for the operator: answered as one ephemeral line.
DOMAIN_ERRORS = (
    ChartError,
    CheckpointError,
    CleanupRunningError,
    ThresholdError,
    UnknownTypeError,
    TraceRunningError,
    NoAlertChannelError,
)


def database_unavailable(error: BaseException) -> str:
    """One line for the operator: what the database said (its first line, no SQL), and that
    nothing changed."""
    cause = getattr(error, "orig", None) or error
    said = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
    return f"The database is unavailable right now ({said}): nothing was changed. Try again in a moment."


async def answer_command_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    """Refused operators were answered by the check; domain errors become one ephemeral line, an
    unavailable database too; anything else gets an apology and a logged traceback."""
    if isinstance(error, app_commands.CheckFailure):
        return
    original = getattr(error, "original", error)
    name = interaction.command.qualified_name if interaction.command else "?"
    if isinstance(original, DOMAIN_ERRORS):
        answer = str(original)
    elif is_database_outage(original):
        answer = database_unavailable(original)
        log.warning("/%s: %s", name, answer, exc_info=log.isEnabledFor(logging.DEBUG))
    elif discord_failed(original):
        # Discord failed to take the answer (a 5xx on the reply or follow-up): not the bot's fault,
        # and the work itself was done; there is no way to answer either.
        log.warning("/%s: Discord could not take the answer (%s)", name, str(original))
        return
    else:
        log.error("Unexpected error in /%s", name, exc_info=original)
        with contextlib.suppress(discord.HTTPException):
            await reply(interaction, APOLOGY)
        return
    with contextlib.suppress(discord.HTTPException):
        await reply(interaction, error_line(answer))


def discord_failed(error: BaseException | None) -> bool:
    """A 5xx from Discord (on the answer itself, typically): Discord's trouble, not the bot's."""
    return isinstance(error, discord.HTTPException) and error.status >= 500


def answered_in_discord(error: BaseException) -> bool:
    """True for errors the cog answers with one ephemeral line (refused operators, domain errors):
    expected outcomes, not faults of the bot."""
    if isinstance(error, app_commands.CheckFailure):
        return True
    original = getattr(error, "original", None)
    return isinstance(original, DOMAIN_ERRORS) or is_database_outage(original) or discord_failed(original)


async def reply(interaction: discord.Interaction, content: str | None = None, **kwargs: Any) -> None:
    """Answer ephemerally, whether or not the interaction was deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(discord.utils.MISSING if content is None else content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)
