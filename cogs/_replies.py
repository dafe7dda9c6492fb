"""Answering /mem: ephemeral replies, and which errors are answered as one line."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from sqlalchemy import exc as sa_exc

from polly.alerts import ThresholdError
from polly.allocations import TraceRunningError
from polly.checkpoints import CheckpointError
from polly.enhanced_database import DatabaseUnreachableError, PoolTimeoutError
from polly.heap_types import UnknownTypeError
from polly.monitor_cycle import CleanupRunningError

APOLOGY = "Sorry, that went wrong on our side; the details are in the bot's log."
# Refusals whose message is one sentence for the operator: answered as one ephemeral line.
DOMAIN_ERRORS = (CheckpointError, CleanupRunningError, ThresholdError, UnknownTypeError, TraceRunningError)
# The database refused or could not be reached (locked, read-only, stopped, pool exhausted): an
# outage, not a bug; the transaction was rolled back.
DATABASE_ERRORS = (sa_exc.DBAPIError, PoolTimeoutError, DatabaseUnreachableError)


def database_unavailable(error: BaseException) -> str:
    """One line for the operator: what the database said (its first line, no SQL), and that
    nothing changed."""
    cause = getattr(error, "orig", None) or error
    said = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
    return f"The database is unavailable right now ({said}): nothing was changed. Try again in a moment."


def answered_in_discord(error: BaseException) -> bool:
    """True for errors the cog answers with one ephemeral line (refused operators, domain errors):
    expected outcomes, not faults of the bot."""
    if isinstance(error, app_commands.CheckFailure):
        return True
    return isinstance(getattr(error, "original", None), DOMAIN_ERRORS + DATABASE_ERRORS)


async def reply(interaction: discord.Interaction, content: str | None = None, **kwargs: Any) -> None:
    """Answer ephemerally, whether or not the interaction was deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)
