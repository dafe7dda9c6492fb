"""Who may use /mem: the bot's operators, checked server-side on every command.

Discord's default member permission is only a hint (a guild admin can re-grant the command), and
/mem acts on the whole bot process, so every invocation is checked here too.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from polly import clock
from polly.config import Settings
from polly.registry import registry

log = logging.getLogger(__name__)

# Refusals logged per (user, guild): the first one is a WARNING, the rest within
# ALERT_REPEAT_MINUTES are counted and summed up in the next WARNING (300 refused calls wrote 300
# lines). Bounded: the users refused most recently.
refusals_logged = registry.bounded_dict(
    "refused_access_log", max_size=1000, timestamp_key="last_at", description="refused /mem calls per user, for the log"
)

REFUSAL = (
    "You must be one of this bot's operators to use /mem: it acts on the whole bot process, "
    "not on this server. Ask the bot's owner to add you to MEMORY_ADMIN_USER_IDS."
)


async def is_operator(
    bot: commands.Bot, settings: Settings, user: discord.abc.User, guild: discord.Guild | None
) -> bool:
    """Owners (application owner or team), MEMORY_ADMIN_USER_IDS, or an admin role in an admin guild."""
    if user.id in settings.memory_admin_user_ids:
        return True
    if (
        guild is not None
        and guild.id in settings.memory_admin_guild_ids
        and isinstance(user, discord.Member)
        and any(role.id in settings.memory_admin_role_ids for role in user.roles)
    ):
        return True
    return await bot.is_owner(user)


async def check_operator(bot: commands.Bot, interaction: discord.Interaction, settings: Settings) -> bool:
    """True for operators; anyone else gets an ephemeral refusal and a warning in the log."""
    if await is_operator(bot, settings, interaction.user, interaction.guild):
        return True
    command = interaction.command.qualified_name if interaction.command else "?"
    _log_refusal(interaction, command, settings.alert_repeat_minutes * 60)
    await interaction.response.send_message(REFUSAL, ephemeral=True)
    return False


def _log_refusal(interaction: discord.Interaction, command: str, quiet_s: float) -> None:
    """A WARNING for the first refusal of a user in a guild, then at most one per `quiet_s`,
    saying how many were refused in between (those go to DEBUG)."""
    now = clock.timestamp()
    key = (interaction.user.id, interaction.guild_id)
    seen = refusals_logged.get(key)
    if seen is not None and now - seen["last_at"] < quiet_s:
        seen["suppressed"] += 1
        refusals_logged[key] = seen
        log.debug("Refused /%s to %s (%d) again", command, interaction.user, interaction.user.id)
        return
    more = f"; {seen['suppressed']} more refused since the last such line" if seen and seen["suppressed"] else ""
    log.warning(
        "Refused /%s to %s (%d) in guild %s (%s): not an operator%s",
        command,
        interaction.user,
        interaction.user.id,
        interaction.guild.name if interaction.guild else "DM",
        interaction.guild_id,
        more,
    )
    refusals_logged[key] = {"last_at": now, "suppressed": 0}
