"""The monitor loop under SimCord's clock: alerts in the ops channel, faults, back-off, reload."""

from __future__ import annotations

import asyncio

import discord
import pytest
from sqlalchemy.exc import OperationalError

from bot import poll_checks as bt
from polly.ext.cog import memory_cog
from polly.memory_utils import registry
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, reply_text
from tests.settings import make_settings

LOOP_TASK = "discord-ext-tasks: MemoryCogBackground.monitor_loop"


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(
        tmp_path,
        max_failure_entries=10,
        failure_cleanup_age=5,
        alert_dict_fill_percent=50,
        alert_for_checks=3,
        alert_repeat_minutes=60,
        memory_check_interval_seconds=60,
        memory_cleanup_interval_minutes=10,
        memory_max_consecutive_errors=3,
    )


@pytest.fixture
async def ops(simcord_env, simcord_bot):
    """An ops guild whose #ops channel is the alert channel; returns (channel, operator)."""
    _, channel, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(channel, "mem alerts", channel=channel)
    return channel, operator


def alert_titles(channel) -> list[str]:
    return [m.embeds[0].title for m in channel.history() if m.embeds and m.author.bot]


def fill_failures(count: int = 10) -> None:
    for poll_id in range(count):
        bt.record_failure(poll_id, "cached_channel")


async def test_filling_failures_alerts_after_the_hold_time_once_and_resolves_after_cleanup(
    simcord_env, simcord_bot, ops
):
    channel, _ = ops
    fill_failures()
    assert len(bt.message_fetch_failures) == 10  # bounded by MAX_FAILURE_ENTRIES

    await simcord_env.advance_time(120)  # two ticks holding: still pending
    assert not any("filling up" in t for t in alert_titles(channel))

    await simcord_env.advance_time(60)  # third tick: fires
    fired = [m for m in channel.history() if m.embeds and "Tracked structure filling up" in m.embeds[0].title]
    assert len(fired) == 1
    embed = fired[0].embeds[0]
    assert "message_fetch_failures holds 10 of 10 entries (100 %)" in embed.description
    assert any(f.name == "What to do" and "/mem cleanup" in f.value for f in embed.fields)
    assert_within_discord_limits(fired[0].content, fired[0].embeds)

    await simcord_env.advance_time(5 * 60)  # still firing: no duplicate
    assert sum("Tracked structure filling up" in t for t in alert_titles(channel)) == 1

    await simcord_env.advance_time(2 * 60)  # the 10-minute cleanup drops the 5-minute-old failures
    assert len(bt.message_fetch_failures) == 0
    resolved = [t for t in alert_titles(channel) if t.startswith("🟢 Resolved: Tracked structure filling up")]
    assert len(resolved) == 1
    events = await memory_cog(simcord_bot).store.recent(10)
    assert [(e.kind, e.subject, e.delivered) for e in events if e.rule == "structure_fill"] == [
        ("resolved", "message_fetch_failures", True),
        ("fired", "message_fetch_failures", True),
    ]


async def test_an_operators_cleanup_resolves_the_alert_on_the_next_tick(simcord_env, simcord_bot, ops):
    channel, operator = ops
    fill_failures()
    await simcord_env.advance_time(3 * 60)
    assert sum("Tracked structure filling up" in t for t in alert_titles(channel)) == 1
    await simcord_env.advance_time(3 * 60)  # the failures are now older than FAILURE_CLEANUP_AGE
    result = await operator.slash(channel, "mem cleanup")
    row = next(line for line in reply_text(result).splitlines() if line.startswith("message_fetch_failures"))
    assert row.split() == ["message_fetch_failures", "10", "0", "10"]
    assert len(bt.message_fetch_failures) == 0
    assert not any(t.startswith("🟢 Resolved") for t in alert_titles(channel))
    await simcord_env.advance_time(60)
    assert [t for t in alert_titles(channel) if t.startswith("🟢 Resolved")] == [
        "🟢 Resolved: Tracked structure filling up"
    ]


async def test_alert_post_fails_while_the_channel_is_gone_and_is_delivered_later(simcord_env, simcord_bot, ops):
    channel, _ = ops
    simcord_env.inject_error(
        "POST", f"/channels/{channel.id}/messages", status=404, code=10003, message="Unknown Channel", times=None
    )
    fill_failures()
    ticks = memory_cog(simcord_bot).cycle.health.ticks
    await simcord_env.advance_time(4 * 60)
    assert memory_cog(simcord_bot).cycle.health.ticks == ticks + 4  # the loop kept ticking
    assert memory_cog(simcord_bot).cycle.health.undelivered == 1
    assert not any("filling up" in t for t in alert_titles(channel))

    simcord_env.backend.faults.clear()  # the channel is reachable again
    await simcord_env.advance_time(60)
    assert sum("Tracked structure filling up" in t for t in alert_titles(channel)) == 1
    assert memory_cog(simcord_bot).cycle.health.undelivered == 0


async def test_missing_send_permission_keeps_alerts_queued_until_a_usable_channel_is_set(simcord_env, simcord_bot, ops):
    channel, operator = ops
    guild = simcord_env.guild
    locked = guild.create_text_channel(
        "locked", overwrites={guild.me: discord.PermissionOverwrite(send_messages=False)}
    )
    await operator.slash(channel, "mem alerts", channel=locked)
    fill_failures()
    await simcord_env.advance_time(4 * 60)
    assert memory_cog(simcord_bot).cycle.health.undelivered == 1
    assert simcord_bot.get_cog("MemoryCog").monitor_loop.is_running()

    result = await operator.slash(channel, "mem alerts", channel=channel)  # delivers the queue at once
    assert "Tracked structure filling up" in channel.last_message.embeds[0].title
    assert "Waiting for delivery" not in str(result.response.embeds[0].fields)


async def test_process_reading_failures_back_off_say_so_once_and_recover(
    simcord_env, simcord_bot, ops, monkeypatch, caplog
):
    channel, _ = ops
    cog = simcord_bot.get_cog("MemoryCog")

    def refuse():
        raise OSError("simulated /proc read failure")

    monkeypatch.setattr(memory_cog(simcord_bot).monitor.process, "memory_info", refuse)
    errors = memory_cog(simcord_bot).cycle.health.errors
    await simcord_env.advance_time(3 * 60)  # three failing ticks: back off
    assert memory_cog(simcord_bot).cycle.health.errors - errors == 3
    assert memory_cog(simcord_bot).cycle.health.backoff_factor == 2
    assert cog.monitor_loop.seconds == 120
    assert cog.monitor_loop.is_running()
    await simcord_env.advance_time(120)
    assert cog.monitor_loop.seconds == 240
    backoff_posts = [t for t in alert_titles(channel) if "backing off" in t]
    assert backoff_posts == ["⚠ Memory monitor is backing off"]
    assert sum("backing off" in r.getMessage() for r in caplog.records) == 1

    monkeypatch.undo()
    await simcord_env.advance_time(240)
    assert memory_cog(simcord_bot).cycle.health.backoff_factor == 1
    assert cog.monitor_loop.seconds == 60
    assert memory_cog(simcord_bot).cycle.health.consecutive_errors == 0


async def test_database_failures_do_not_stop_the_loop(simcord_env, simcord_bot, ops, monkeypatch):
    channel, _ = ops

    async def locked(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(memory_cog(simcord_bot).store, "record", locked)
    monkeypatch.setattr(memory_cog(simcord_bot).monitor, "checkpoint", locked)
    memory_cog(simcord_bot).cycle.last_checkpoint_at = None  # an automatic checkpoint is due: it fails
    fill_failures()
    ticks, errors = memory_cog(simcord_bot).cycle.health.ticks, memory_cog(simcord_bot).cycle.health.errors
    await simcord_env.advance_time(3 * 60)
    assert memory_cog(simcord_bot).cycle.health.errors > errors
    monkeypatch.undo()
    await simcord_env.advance_time(3 * 60)
    assert memory_cog(simcord_bot).cycle.health.ticks > ticks
    assert any("Tracked structure filling up" in t for t in alert_titles(channel))


async def test_reloading_the_extension_leaves_exactly_one_loop(simcord_env, simcord_bot, ops):
    def loops() -> list[asyncio.Task]:
        return [t for t in asyncio.all_tasks() if t.get_name() == LOOP_TASK and not t.done()]

    assert len(loops()) == 1
    await simcord_bot.reload_extension("polly")
    await simcord_env.advance_time(60)
    assert len(loops()) == 1
    await simcord_bot.reload_extension("polly")
    await simcord_env.advance_time(60)
    assert len(loops()) == 1
    assert simcord_bot.get_cog("MemoryCog").alert_channel_id == ops[0].id  # persisted setting reloaded


async def test_every_reply_and_alert_fits_discord_limits_with_50_long_named_structures(simcord_env, simcord_bot, ops):
    channel, operator = ops
    names = [f"structure_{i:02d}_" + "with_a_really_long_descriptive_name_" * 3 for i in range(50)]
    try:
        for name in names:
            d = registry.bounded_dict(name, max_size=10)
            d.update({k: k for k in range(9)})  # 90 %: every one fires
        memory_cog(simcord_bot).cycle.engine.set_threshold("for_checks", 1)
        await simcord_env.advance_time(60)
        results = [
            await operator.slash(channel, "mem stats"),
            await operator.slash(channel, "mem cleanup", dry_run=True),
            await operator.slash(channel, "mem checkpoint", label="x" * 100),
            await operator.slash(channel, "mem checkpoint", label="y" * 100),
            await operator.slash(channel, "mem alerts"),
            await operator.slash(channel, "mem pool"),
        ]
        for result in results:
            for message in [result.response, *result.followups]:
                assert_within_discord_limits(message.content, message.embeds)
        posted = [m for m in channel.history() if m.author.bot]
        # a flood: the first 10 alerts one by one, the other 40 in one summary, nothing lost
        assert sum("filling up" in (m.embeds[0].title or "") for m in posted) == 10
        summaries = [m for m in posted if (m.embeds[0].title or "").startswith("📋 40 more alert event(s)")]
        assert len(summaries) == 1
        for message in posted:
            assert_within_discord_limits(message.content, message.embeds)
    finally:
        for name in names:
            registry.unregister(name)


async def test_an_unexpected_error_while_posting_alerts_keeps_them_queued_and_the_loop_alive(
    simcord_env, simcord_bot, ops, monkeypatch
):
    channel, _ = ops
    cog = simcord_bot.get_cog("MemoryCog")
    from polly.ext import alert_render

    original = alert_render.alert_embed

    def broken(*args, **kwargs):
        raise ValueError("rendering bug")

    monkeypatch.setattr(alert_render, "alert_embed", broken)
    fill_failures()
    await simcord_env.advance_time(4 * 60)
    assert cog.monitor_loop.is_running()
    assert memory_cog(simcord_bot).cycle.health.undelivered == 1
    monkeypatch.setattr(alert_render, "alert_embed", original)
    await simcord_env.advance_time(60)
    assert sum("Tracked structure filling up" in t for t in alert_titles(channel)) == 1


class Flaky(dict):
    """A tracked dict whose size can fail to be read, as a buggy structure's __len__ would."""

    failing = False

    def __len__(self) -> int:
        if self.failing:
            raise RuntimeError("cannot count on purpose")
        return super().__len__()


async def test_a_firing_alert_whose_structure_cannot_report_for_a_tick_is_neither_resolved_nor_fired_again(
    simcord_env, simcord_bot, ops
):
    channel, operator = ops
    flaky = registry.register("flaky_cache", Flaky({i: i for i in range(10)}), max_size=10)
    try:
        await simcord_env.advance_time(4 * 60)  # held three checks: fired
        assert sum("Tracked structure filling up" in t for t in alert_titles(channel)) == 1
        flaky.failing = True
        await simcord_env.advance_time(2 * 60)  # two ticks without the structure's size
        assert "alert rule input(s) failed in the last tick" in reply_text(await operator.slash(channel, "mem stats"))
        flaky.failing = False
        await simcord_env.advance_time(3 * 60)
        titles = alert_titles(channel)
        assert sum("Tracked structure filling up" in t for t in titles) == 1, titles  # not fired again
        assert not [t for t in titles if "resolved" in t.lower()], titles
        assert "flaky_cache" in [a.subject for a in memory_cog(simcord_bot).cycle.engine.active()]
    finally:
        registry.unregister("flaky_cache")


async def test_every_part_of_polly_reads_the_one_clock_the_extension_injected(simcord_env, simcord_bot):
    """SimCord's virtual time is discord.py's: the samples, a structure's age-based cleanup run with no
    time handed in, and the history all read it (four clocks used to disagree under it)."""
    from polly import clock

    aged = registry.bounded_dict("clock_probe", max_size=100, max_age_minutes=30, timestamp_key="at")
    try:
        aged["old"] = {"at": clock.timestamp()}
        await simcord_env.advance_time(31 * 60)
        assert clock.now() == simcord_env.now() == memory_cog(simcord_bot).monitor.clock()
        assert memory_cog(simcord_bot).cycle.monitor.latest.at >= simcord_env.now().replace(minute=0)
        aged["new"] = {"at": clock.timestamp()}
        registry.cleanup()  # no `now` handed in: the process's clock, virtual here
        assert list(aged) == ["new"]
    finally:
        registry.unregister("clock_probe")
