"""Polly's scheduled poll-message check and cleanup, profiled, through the real bot in SimCord."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import polls
from polly.decorators import profile_table
from tests.bot.test_poll_checks import add_poll
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, last_reply, reply_text
from tests.settings import make_settings

VERIFY = "bot.poll_checks.verify_poll_messages"
CLEANUP = "bot.poll_checks.cleanup_polls_with_deleted_messages"


async def poll_ids(bot) -> list[int]:
    async with bot.db.transaction() as conn:
        return list(await conn.scalars(select(polls.c.id)))


async def test_a_poll_whose_message_is_gone_is_deleted_by_the_scheduled_check(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    kept_message = await operator.send(ops, "the poll that stays")
    kept = await add_poll(simcord_bot, ops.id, kept_message.id)
    gone = await add_poll(simcord_bot, ops.id, 999_999_999_999)  # no such message
    interval = simcord_bot.settings.poll_check_interval_minutes * 60
    calls_before = profile_table[VERIFY].calls if VERIFY in profile_table else 0
    await simcord_env.advance_time(interval * 3)  # the retry budget: three failed fetches
    assert await poll_ids(simcord_bot) == [kept]
    assert gone not in await poll_ids(simcord_bot)
    assert profile_table[VERIFY].calls - calls_before >= 3
    assert CLEANUP in profile_table  # once at start-up, then after checks that found missing messages


async def test_mem_profile_shows_calls_time_and_rss_change(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await simcord_env.advance_time(simcord_bot.settings.poll_check_interval_minutes * 60)
    result = await operator.slash(ops, "mem profile")
    text = reply_text(result)
    assert "poll_checks.verify_poll_messages" in text
    assert "poll_checks.cleanup_polls_with_deleted_messages" in text
    assert "calls · time mean" in text and "RSS change mean" in text
    assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)


def test_the_check_interval_comes_from_the_settings(tmp_path):
    from bot.app import create_bot
    from cogs.polls import PollUpkeepCog

    bot = create_bot(make_settings(tmp_path, poll_check_interval_minutes=7))
    cog = PollUpkeepCog(bot)
    assert cog.check_loop.minutes == 7
