"""Who may use /mem: the bot's operators, checked server-side on every command.

Discord's default member permission is only a hint (a guild admin can re-grant the command), and
/mem acts on the whole bot process, so every invocation is checked here too.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from polly.config import Settings

log = logging.getLogger(__name__)

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


async def check_operator(interaction: discord.Interaction, settings: Settings) -> bool:
    """True for operators; anyone else gets an ephemeral refusal and a warning in the log."""
    bot = interaction.client
    assert isinstance(bot, commands.Bot)
    if await is_operator(bot, settings, interaction.user, interaction.guild):
        return True
    command = interaction.command.qualified_name if interaction.command else "?"
    log.warning(
        "Refused /%s to %s (%d) in guild %s (%s): not an operator",
        command,
        interaction.user,
        interaction.user.id,
        interaction.guild.name if interaction.guild else "DM",
        interaction.guild_id,
    )
    await interaction.response.send_message(REFUSAL, ephemeral=True)
    return False
