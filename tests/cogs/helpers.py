"""Helpers for driving the bot through SimCord."""

from __future__ import annotations

import discord

from polly.ext.discord_limits import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    TITLE_LIMIT,
)


def add_ops_guild(env, bot, name: str = "olivia", **guild_options):
    """A guild with an #ops channel and a server admin who is also one of the bot's operators.

    Returns (guild, ops channel, operator).
    """
    guild = env.create_guild("Ops", **guild_options)
    ops = guild.create_text_channel("ops")
    admins = guild.create_role("Admins", permissions=discord.Permissions(administrator=True))
    operator = guild.add_member(env.create_user(name), roles=[admins])
    make_operator(bot, operator)
    return guild, ops, operator


def make_operator(bot, member) -> None:
    """Add a member to MEMORY_ADMIN_USER_IDS of the running bot (ids exist only once users do)."""
    bot.settings.memory_admin_user_ids.append(member.id)


def assert_within_discord_limits(content: str | None, embeds: list[discord.Embed]) -> None:
    assert len(content or "") <= CONTENT_LIMIT
    assert len(embeds) <= 10
    for embed in embeds:
        assert len(embed.title or "") <= TITLE_LIMIT
        assert len(embed.description or "") <= DESCRIPTION_LIMIT
        assert len(embed.fields) <= FIELD_COUNT_LIMIT
        for field in embed.fields:
            assert 0 < len(field.name) <= FIELD_NAME_LIMIT
            assert 0 < len(field.value) <= FIELD_VALUE_LIMIT
        assert len(embed) <= EMBED_TOTAL_LIMIT


def embed_text(embed: discord.Embed) -> str:
    parts = [embed.title or "", embed.description or ""]
    for field in embed.fields:
        parts += [field.name, field.value]
    if embed.footer and embed.footer.text:
        parts.append(embed.footer.text)
    return "\n".join(parts)


def reply_text(result) -> str:
    """Content and embeds of an interaction's answer (the response or, if deferred, the followup)."""
    messages = [m for m in [result.response, *result.followups] if m is not None]
    return "\n".join([(m.content or "") + "\n" + "\n".join(embed_text(e) for e in m.embeds) for m in messages])


def last_reply(result):
    messages = [m for m in [result.response, *result.followups] if m is not None]
    return messages[-1]
