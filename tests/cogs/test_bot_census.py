"""What the bot keeps alive: each leak a bot author makes with their own objects, made by a real
leaky cog in the bot under SimCord, named by Polly (census, checkpoint comparison, alert, holder)
before anyone has to guess a type name; and a healthy bot's day stays silent."""

from __future__ import annotations

import gc
import re

import pytest

from polly.ext.cog import memory_cog
from polly.offline import bot_leaks
from polly.offline.bot_leaks import ChildPerCommand
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, embed_text, last_reply, reply_text
from tests.settings import make_settings

LEAKS = 6
RULE_TITLE = "Bot objects growing"


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(
        tmp_path,
        memory_check_interval_seconds=60,
        memory_auto_checkpoint_minutes=10,
        alert_bot_growth_minutes=5,
        alert_bot_growth_objects=5,
        alert_for_checks=1,
        alert_leak_grace_minutes=0,
    )


@pytest.fixture
async def leaky_bot(simcord_env, simcord_bot):
    """The bot with every leaky cog, an #ops alert channel, #votes and #reminders; yields
    (bot, guild, ops, operator, member); the child processes are killed afterwards."""
    bot = simcord_bot
    await bot_leaks.add_leaky_cogs(bot)
    await bot.tree.sync()
    guild, ops, operator = add_ops_guild(simcord_env, bot)
    await operator.slash(ops, "mem alerts", channel=ops)
    member = guild.add_member(simcord_env.create_user("voter"))
    try:
        yield bot, guild, ops, operator, member
    finally:
        bot_leaks.leaky(bot, ChildPerCommand).stop_children()
        bot_leaks.HANDLERS.clear()


def alerts_in(channel) -> list[str]:
    """The text of each alert posted in `channel`."""
    return [embed_text(m.embeds[0]) for m in channel.history() if m.author.bot and m.embeds]


def fired(channel, subject: str) -> list[str]:
    return [a for a in alerts_in(channel) if RULE_TITLE in a and subject in a and "🔴" in a]


async def post_each_minute(env, guild, member, channel_name: str, minutes: int) -> None:
    """`member` posts in a new #`channel_name` once a minute (a tick after each) for `minutes`:
    the leaky cogs answer each message with a leak."""
    channel = guild.create_text_channel(channel_name)
    for minute in range(minutes):
        await member.send(channel, f"message {minute}")
        await env.advance_time(60)


async def checkpoint_text(operator, ops, label: str, compare_to: str | None = None) -> str:
    options = {"label": label} | ({"compare_to": compare_to} if compare_to else {})
    result = await operator.slash(ops, "mem checkpoint", **options)
    return reply_text(result)


def grew_row(text: str, kind: str) -> tuple[int, int, int] | None:
    """(before, after, change) of `kind` in a 'Bot objects that grew' table."""
    match = re.search(rf"{re.escape(kind)}\s+(\d+)\s+(\d+)\s+\+(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


async def test_a_task_per_message_that_never_ends_is_named_with_where_it_waits(simcord_env, leaky_bot):
    bot, guild, ops, operator, member = leaky_bot
    await simcord_env.advance_time(60)
    await checkpoint_text(operator, ops, "before")
    await post_each_minute(simcord_env, guild, member, "reminders", LEAKS + 1)
    census = memory_cog(bot).monitor.latest.bot
    kind = next(t for t in census.tasks if t.name == "TaskPerMessage.remind_later")
    assert kind.count == LEAKS + 1
    assert kind.waits[-1].startswith("TaskPerMessage.remind_later (polly/offline/bot_leaks.py:")
    assert kind.oldest_s >= LEAKS * 60

    text = await checkpoint_text(operator, ops, "after", "before")
    assert grew_row(text, "task TaskPerMessage.remind_later") == (0, LEAKS + 1, LEAKS + 1)
    alert = fired(ops, "task TaskPerMessage.remind_later")
    assert len(alert) == 1, alerts_in(ops)
    assert (
        "6 tasks running TaskPerMessage.remind_later: +5 in 5 min without a fall; the oldest seen for 5 min" in alert[0]
    )
    assert "waiting at TaskPerMessage.remind_later (polly/offline/bot_leaks.py:" in alert[0]

    result = await operator.slash(ops, "mem tasks")
    text = reply_text(result)
    assert re.search(rf"TaskPerMessage\.remind_later\s+{LEAKS + 1}\s", text)
    assert "Where the oldest of each waits" in text and "bot_leaks.py:" in text
    assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)


async def test_a_view_without_a_timeout_per_message_is_named_by_class(simcord_env, leaky_bot):
    bot, guild, ops, operator, member = leaky_bot
    await simcord_env.advance_time(60)
    await checkpoint_text(operator, ops, "before")
    await post_each_minute(simcord_env, guild, member, "votes", LEAKS + 1)
    census = memory_cog(bot).monitor.latest.bot
    (view,) = [v for v in census.views if v.name == "polly.offline.bot_leaks.VoteButtons"]
    assert (view.count, view.no_timeout, view.persistent, view.per_message) == (LEAKS + 1, LEAKS + 1, 0, LEAKS + 1)

    text = await checkpoint_text(operator, ops, "after", "before")
    assert grew_row(text, "view polly.offline.bot_leaks.VoteButtons") == (0, LEAKS + 1, LEAKS + 1)
    alert = fired(ops, "view polly.offline.bot_leaks.VoteButtons")
    assert len(alert) == 1, alerts_in(ops)
    # fired once the kind had risen for ALERT_BOT_GROWTH_MINUTES (5) by ALERT_BOT_GROWTH_OBJECTS (5)
    assert (
        "6 polly.offline.bot_leaks.VoteButtons views stored: +5 in 5 min without a fall; 6 without a timeout"
        in alert[0]
    )

    text = reply_text(await operator.slash(ops, "mem stats"))
    assert f"{LEAKS + 1} views ({LEAKS + 1} without a timeout)" in text


async def test_a_session_per_command_is_counted_at_checkpoints_and_alerted(simcord_env, leaky_bot):
    bot, _, ops, operator, _ = leaky_bot
    await simcord_env.advance_time(60)
    await checkpoint_text(operator, ops, "before")
    for _ in range(LEAKS):
        await operator.slash(ops, "fetch")
    text = await checkpoint_text(operator, ops, "after", "before")
    assert grew_row(text, "sessions unclosed") == (0, LEAKS, LEAKS)
    sessions = (await memory_cog(bot).monitor.get_checkpoint("after")).sample.bot.sessions
    assert (sessions.total, sessions.unclosed, sessions.bot_unclosed) == (LEAKS, LEAKS, LEAKS)
    assert sessions.connectors_open == LEAKS

    await simcord_env.advance_time(60)  # the next tick judges the two counts
    alert = fired(ops, "sessions")
    assert len(alert) == 1, alerts_in(ops)
    assert f"{LEAKS} unclosed HTTP sessions besides discord.py's: +{LEAKS}" in alert[0]

    text = reply_text(await operator.slash(ops, "mem tasks"))
    assert f"{LEAKS} HTTP sessions ({LEAKS} unclosed)" in text
    # closed sessions are no leak: the next count falls, and the alert resolves
    for session in bot_leaks.leaky(bot, bot_leaks.SessionPerCommand).clients.values():
        await session.close()
    await checkpoint_text(operator, ops, "closed")
    await simcord_env.advance_time(60)
    assert any("🟢" in a and "sessions" in a for a in alerts_in(ops)), alerts_in(ops)


async def test_a_cog_reloaded_five_times_leaves_five_survivors_held_by_the_module_list(simcord_env, leaky_bot):
    bot, _, ops, operator, _ = leaky_bot
    await bot.load_extension("polly.offline.leaky_reload")
    await simcord_env.advance_time(60)
    await checkpoint_text(operator, ops, "before")
    for _ in range(5):
        await bot.reload_extension("polly.offline.leaky_reload")
    gc.collect()  # the full collection a survivor is judged after (the automatic cleanup's, in a bot)

    result = await operator.slash(ops, "mem tasks")
    text = reply_text(result)
    assert "polly.offline.leaky_reload.GreeterCog** (cog) x5" in text
    assert "held by `polly.offline.bot_leaks.HANDLERS (list) → greet.__self__ → GreeterCog`" in text
    assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)

    await simcord_env.advance_time(60)
    alert = fired(ops, "survivor polly.offline.leaky_reload.GreeterCog")
    assert len(alert) == 1, alerts_in(ops)
    assert "5 polly.offline.leaky_reload.GreeterCog instances alive after their unload, held by" in alert[0]
    assert "held by polly.offline.bot_leaks.HANDLERS (list) → greet.__self__ → GreeterCog" in alert[0]
    text = await checkpoint_text(operator, ops, "after", "before")
    assert grew_row(text, "survivor polly.offline.leaky_reload.GreeterCog") == (0, 5, 5)
    assert "⚠ 5 survivor(s): GreeterCog x5" in reply_text(await operator.slash(ops, "mem stats"))

    # the holder lets go: no survivor, and the alert resolves
    bot_leaks.HANDLERS.clear()
    gc.collect()
    await simcord_env.advance_time(60)
    assert memory_cog(bot).monitor.latest.bot.survivors == ()
    assert any("🟢" in a and "GreeterCog" in a for a in alerts_in(ops)), alerts_in(ops)


async def test_a_child_process_left_running_is_counted_with_its_rss(simcord_env, leaky_bot):
    bot, _, ops, operator, _ = leaky_bot
    await simcord_env.advance_time(60)
    await checkpoint_text(operator, ops, "before")
    await operator.slash(ops, "transcode")
    await simcord_env.advance_time(60)
    children = memory_cog(bot).monitor.latest.bot.children
    (child,) = [c for c in children if c.pid == bot_leaks.leaky(bot, ChildPerCommand).children[0].pid]
    assert child.rss >= 8 * 1024 * 1024  # the 8 MiB it holds, read from its own /proc entry
    text = await checkpoint_text(operator, ops, "after", "before")
    assert grew_row(text, "child processes") == (0, 1, 1)
    stats = reply_text(await operator.slash(ops, "mem stats"))
    assert re.search(r"1 child process\(es\) \d+\.\d MiB; with the bot \d+\.\d MiB", stats)


class TestAHealthyDay:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, memory_check_interval_seconds=60)  # the rule's defaults: 30 min, 20 objects

    async def test_the_same_traffic_from_healthy_cogs_for_a_day_fires_nothing(self, simcord_env, simcord_bot):
        bot = simcord_bot
        await bot.load_extension("tests.cogs.healthy_extension")
        await bot.tree.sync()
        guild, ops, operator = add_ops_guild(simcord_env, bot)
        await operator.slash(ops, "mem alerts", channel=ops)
        votes, reminders = guild.create_text_channel("votes"), guild.create_text_channel("reminders")
        member = guild.add_member(simcord_env.create_user("voter"))
        most_views = most_tasks = 0
        for step in range(24 * 6):  # every 10 minutes of a day: a burst of traffic
            for i in range(3 + step % 4):
                await member.send(votes, f"poll {step}.{i}")
            for i in range(1 + step % 3):  # (each pending wait_for with a timeout costs SimCord real time)
                await member.send(reminders, f"remind {step}.{i}")
            await operator.slash(ops, "fetch")
            if step % 6 == 0:  # every hour: a reload and a child process
                await bot.reload_extension("tests.cogs.healthy_extension")
                await operator.slash(ops, "transcode")
            await simcord_env.advance_time(60)  # a tick while the views and tasks are alive
            census = memory_cog(bot).monitor.latest.bot
            most_views = max(most_views, census.view_total)
            most_tasks = max(most_tasks, sum(t.count for t in census.tasks if "remind_later" in t.name))
            await simcord_env.advance_time(540)
        census = memory_cog(bot).monitor.latest.bot
        assert most_views >= 6 and most_tasks >= 3  # the traffic was there, and counted
        assert census.survivors == () and census.sessions is not None and census.sessions.bot_unclosed == 1
        events = await memory_cog(bot).store.recent(500)
        assert [e for e in events if e.rule == "bot_objects_growing"] == []
        assert not [a for a in alerts_in(ops) if RULE_TITLE in a]
