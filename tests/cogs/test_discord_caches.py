"""discord.py's caches, counted each tick and shown in /mem stats, /health/memory, /metrics, checkpoints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from polly.ext.cog import memory_cog
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, last_reply, reply_text
from tests.conftest import REPO_ROOT
from tests.settings import FAKE_TOKEN, make_settings


async def traffic(env, guild, channel, count: int) -> None:
    """`count` members join and each posts one message."""
    for i in range(count):
        member = guild.add_member(env.create_user(f"member{i}"))
        await member.send(channel, f"hello {i}")


class TestWithCaches:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, discord_members_intent=True, discord_member_cache="all", discord_max_messages=50)

    async def test_the_census_follows_members_joining_and_messages_posted(self, simcord_env, simcord_bot):
        guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
        general = guild.create_text_channel("general")
        await simcord_env.advance_time(60)
        before = memory_cog(simcord_bot).monitor.latest.discord_caches
        await traffic(simcord_env, guild, general, 80)
        await simcord_env.advance_time(60)
        after = memory_cog(simcord_bot).monitor.latest.discord_caches
        assert after.count("members") - before.count("members") == 80
        assert after.count("messages") == 50  # the cap: DISCORD_MAX_MESSAGES
        assert after.message_limit == 50 and after.message_fill_percent == 100.0
        assert after.count("guilds") == 1 and after.count("channels") == 2  # #ops and #general
        assert after.member_cache == "all" and "members" in after.intents

        result = await operator.slash(ops, "mem stats")
        text = reply_text(result)
        assert "Discord caches" in text and "message cache 100.0 % full of 50" in text
        assert "member cache all" in text
        assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)

    async def test_a_checkpoint_comparison_shows_each_cache_change(self, simcord_env, simcord_bot):
        guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
        await operator.slash(ops, "mem checkpoint", label="before")
        await traffic(simcord_env, guild, guild.create_text_channel("general"), 30)
        result = await operator.slash(ops, "mem checkpoint", label="after", compare_to="before")
        embed = last_reply(result).embeds[0]
        caches = next(f.value for f in embed.fields if f.name == "Discord caches")
        assert "members" in caches and "+30" in caches
        assert "messages" in caches


async def test_with_the_default_settings_the_message_and_member_caches_stay_empty(simcord_env, simcord_bot):
    """Polly's defaults: no message cache (DISCORD_MAX_MESSAGES=0), no member cache."""
    guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await traffic(simcord_env, guild, guild.create_text_channel("general"), 40)
    await simcord_env.advance_time(60)
    census = memory_cog(simcord_bot).monitor.latest.discord_caches
    assert census.count("messages") == 0 and census.message_limit is None
    assert census.count("members") <= 1  # discord.py always keeps the bot's own member
    assert "message cache off (DISCORD_MAX_MESSAGES=0)" in reply_text(await operator.slash(ops, "mem stats"))


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DISCORD_MEMBER_CACHE", "joined", "DISCORD_MEMBERS_INTENT=true"),
        ("DISCORD_MEMBER_CACHE", "everyone", "none, voice, joined or all"),
        ("DISCORD_CHUNK_GUILDS_AT_STARTUP", "true", "Server Members intent"),
        ("DISCORD_MAX_MESSAGES", "-1", "0-1000000"),
    ],
)
def test_cache_settings_discord_cannot_serve_exit_2_with_one_line(tmp_path, variable, value, expected):
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", variable: value, "DISCORD_TOKEN": FAKE_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert variable in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr
