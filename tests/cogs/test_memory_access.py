"""Who may use /mem: operators only, checked server-side; registration limited to admin guilds."""

from __future__ import annotations

import logging

import discord
import pytest
from simcord import SetupError

from polly.ext.cog import memory_cog
from tests.cogs.helpers import make_operator
from tests.settings import make_settings

OPS_GUILD_ID = 1_000_000_000_000_000_001
SUBCOMMANDS = {
    "mem stats": {},
    "mem cleanup": {},
    "mem pool": {},
    "mem checkpoint": {"label": "x"},
    "mem alerts": {},
    "mem inspect": {"type": "dict"},
    "mem trace": {"minutes": 1},
    "mem profile": {},
    "mem chart": {},
    "mem fleet": {},
    "mem explain": {},
    "mem tasks": {},
}


def admin_role(guild):
    return guild.create_role("Admins", permissions=discord.Permissions(administrator=True))


async def test_every_subcommand_refuses_a_server_admin_who_is_not_an_operator(simcord_env, simcord_bot, caplog):
    guild = simcord_env.create_guild("Some server")
    channel = guild.create_text_channel("general")
    admin = guild.add_member(simcord_env.create_user("mallory"), roles=[admin_role(guild)])
    caplog.set_level(logging.WARNING, logger="polly.ext.access")
    registered = {c.qualified_name for c in simcord_bot.tree.get_command("mem").walk_commands()}
    assert set(SUBCOMMANDS) == registered  # a new subcommand must be added here, and so checked

    for name, options in SUBCOMMANDS.items():
        result = await admin.slash(channel, name, **options)
        assert result.ephemeral
        assert "You must be one of this bot's operators" in result.response.content
    refusals = [r.getMessage() for r in caplog.records if "Refused /mem" in r.getMessage()]
    assert len(refusals) == 1  # the first per user and guild; the rest are counted (next test)
    assert "mallory" in refusals[0] and "Some server" in refusals[0] and str(guild.id) in refusals[0]
    assert await memory_cog(simcord_bot).monitor.refresh_checkpoint_count() == 1  # only the automatic one


async def test_repeated_refusals_write_one_line_per_quiet_period_with_a_count(simcord_env, simcord_bot, caplog):
    guild = simcord_env.create_guild("Some server")
    channel = guild.create_text_channel("general")
    admin = guild.add_member(simcord_env.create_user("mallory"), roles=[admin_role(guild)])
    other = guild.add_member(simcord_env.create_user("trudy"), roles=[admin_role(guild)])
    caplog.set_level(logging.WARNING, logger="polly.ext.access")
    for _ in range(30):
        await admin.slash(channel, "mem stats")
    await other.slash(channel, "mem stats")
    lines = [r.getMessage() for r in caplog.records if "Refused /mem" in r.getMessage()]
    assert len(lines) == 2 and "mallory" in lines[0] and "trudy" in lines[1]
    await simcord_env.advance_time(simcord_bot.settings.alert_repeat_minutes * 60)
    await admin.slash(channel, "mem pool")
    lines = [r.getMessage() for r in caplog.records if "Refused /mem" in r.getMessage()]
    assert len(lines) == 3 and "29 more refused" in lines[2]


async def test_a_member_without_administrator_cannot_use_the_group(simcord_env, simcord_bot):
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    member = guild.add_member(simcord_env.create_user("pat"))
    assert not any(name.startswith("mem") for name in member.available_commands(channel))
    with pytest.raises(SetupError, match="not visible"):
        await member.slash(channel, "mem stats")


async def test_a_regranted_member_is_still_refused_server_side(simcord_env, simcord_bot):
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    member = guild.add_member(simcord_env.create_user("pat"))
    [command] = [c for c in await simcord_bot.tree.fetch_commands() if c.name == "mem"]
    guild.set_command_permissions(command, {member: True})  # a guild admin re-grants /mem
    assert "mem stats" in member.available_commands(channel)
    result = await member.slash(channel, "mem stats")
    assert "You must be one of this bot's operators" in result.response.content


async def test_operator_by_user_id_and_bot_owner_are_allowed(simcord_env, simcord_bot):
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    role = admin_role(guild)
    listed = guild.add_member(simcord_env.create_user("listed"), roles=[role])
    owner = guild.add_member(simcord_env.create_user("owner"), roles=[role])
    make_operator(simcord_bot, listed)
    simcord_bot.owner_ids = {owner.id}
    for member in (listed, owner):
        result = await member.slash(channel, "mem pool")
        assert "Database pool" in result.response.embeds[0].title


class TestAdminGuilds:
    """With MEMORY_ADMIN_GUILD_IDS set, /mem exists only there and an admin role grants access."""

    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, memory_admin_guild_ids=str(OPS_GUILD_ID))

    async def test_group_is_registered_only_in_admin_guilds(self, simcord_env, simcord_bot):
        ops = simcord_env.create_guild("Ops", id=OPS_GUILD_ID)
        other = simcord_env.create_guild("Elsewhere")
        role = admin_role(other)
        admin_elsewhere = other.add_member(simcord_env.create_user("admin"), roles=[role])
        channel = other.create_text_channel("general")
        assert "mem stats" not in admin_elsewhere.available_commands(channel)
        with pytest.raises(SetupError):
            await admin_elsewhere.slash(channel, "mem stats")
        assert [c.name for c in await simcord_bot.tree.fetch_commands(guild=discord.Object(ops.id))] == ["mem"]
        assert await simcord_bot.tree.fetch_commands() == []

    async def test_members_with_an_admin_role_in_an_admin_guild_are_operators(self, simcord_env, simcord_bot):
        ops = simcord_env.create_guild("Ops", id=OPS_GUILD_ID)
        channel = ops.create_text_channel("ops")
        sre = ops.create_role("SRE", permissions=discord.Permissions(administrator=True))
        plain_admin = ops.create_role("Admins", permissions=discord.Permissions(administrator=True))
        simcord_bot.settings.memory_admin_role_ids.append(sre.id)
        engineer = ops.add_member(simcord_env.create_user("engineer"), roles=[sre])
        other_admin = ops.add_member(simcord_env.create_user("other"), roles=[plain_admin])
        allowed = await engineer.slash(channel, "mem stats")
        assert allowed.response.embeds and "Memory" in allowed.response.embeds[0].title
        refused = await other_admin.slash(channel, "mem stats")
        assert "You must be one of this bot's operators" in refused.response.content
