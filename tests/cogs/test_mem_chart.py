"""/mem chart, /mem stats chart:true and charts on alerts, through SimCord with the real renderer
process; the 5-minute history in the real SQLite database."""

from __future__ import annotations

import io
import itertools
from datetime import timedelta

import pytest
from PIL import Image
from simcord.backend.errors import OptionError
from sqlalchemy import func, select

from bot.app import create_bot
from polly.chart import HEIGHT, WIDTH
from polly.ext.chart_reply import CHART_FILENAME
from polly.ext.cog import memory_cog
from polly.models import memory_history
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, last_reply, reply_text
from tests.settings import make_settings


@pytest.fixture
def world(simcord_env, simcord_bot):
    return add_ops_guild(simcord_env, simcord_bot)


def png_of(env, message) -> Image.Image:
    (attachment,) = message.attachments
    assert attachment.filename == CHART_FILENAME
    image = Image.open(io.BytesIO(env.backend.cdn.get(attachment.url)))
    image.load()
    return image


async def test_without_history_the_answer_says_when_there_will_be_a_chart(world):
    _, ops, operator = world
    result = await operator.slash(ops, "mem chart")
    text = last_reply(result).content
    assert result.ephemeral
    assert "No chart yet" in text and "A point is stored every 5 minutes; the next at" in text and "UTC" in text
    assert not last_reply(result).attachments


async def test_mem_chart_attaches_a_png_with_a_caption_within_discord_limits(world, simcord_env, simcord_bot):
    _, ops, operator = world
    await simcord_env.advance_time(20 * 60)  # four 5-minute points
    result = await operator.slash(ops, "mem chart", hours=6)
    message = last_reply(result)
    assert result.ephemeral
    image = png_of(simcord_env, message)
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    (embed,) = message.embeds
    assert embed.title == f"RSS of {simcord_bot.settings.instance()} · last 6 h"
    assert embed.image.url == f"attachment://{CHART_FILENAME}"
    assert "RSS **" in embed.description and "automatic cleanup" in embed.description
    assert_within_discord_limits(message.content, message.embeds)


async def test_mem_stats_chart_true_adds_the_chart_to_the_stats(world, simcord_env):
    _, ops, operator = world
    await simcord_env.advance_time(15 * 60)
    message = last_reply(await operator.slash(ops, "mem stats", chart=True))
    (embed,) = message.embeds
    assert embed.title == "Memory of this bot process"
    assert embed.image.url == f"attachment://{CHART_FILENAME}"
    assert png_of(simcord_env, message).size == (WIDTH, HEIGHT)
    assert_within_discord_limits(message.content, message.embeds)


async def test_mem_stats_chart_true_without_history_still_answers_the_stats(world):
    _, ops, operator = world
    text = reply_text(await operator.slash(ops, "mem stats", chart=True))
    assert "Memory of this bot process" in text and "No chart yet" in text


async def test_the_hours_are_bounded_by_discord_option_limits(world):
    _, ops, operator = world
    with pytest.raises(OptionError, match="must be ≤ 168, got 169"):  # as the Discord client refuses it
        await operator.slash(ops, "mem chart", hours=169)


@pytest.fixture
def month_settings(tmp_path):
    # Hourly ticks, daily cleanups and checkpoints keep a simulated month to ~40 s of SimCord time
    # (each simulated tick costs real milliseconds); 24 h of retention makes the bound visible.
    return make_settings(
        tmp_path,
        memory_check_interval_seconds=3600,
        memory_chart_retention_hours=24,
        memory_auto_checkpoint_minutes=1440,
        memory_cleanup_interval_minutes=1440,
        poll_check_interval_minutes=1440,
    )


async def test_the_history_stays_within_its_bound_after_a_simulated_month(month_settings, pytestconfig):
    """A month in CI (--soak-days 7 and more); four days in a plain local run."""
    import simcord

    days = 30 if pytestconfig.getoption("soak_days") >= 7 else 4
    bot = create_bot(month_settings)
    async with simcord.run(bot, settle_timeout=60) as env:
        for _ in range(days):
            await env.advance_time(24 * 3600)
        async with bot.db.transaction() as conn:
            rows = await conn.scalar(select(func.count()).select_from(memory_history))
            oldest = await conn.scalar(select(func.min(memory_history.c.bucket_start)))
        await bot.close()
    assert 20 <= rows <= 24 * 12 + 1  # one per hourly tick, never more than 24 h of 5-minute buckets
    assert env.now().timestamp() - oldest <= 25 * 3600


async def test_a_restart_shows_as_a_gap(tmp_path):
    import simcord

    settings = make_settings(tmp_path)
    bot = create_bot(settings)
    async with simcord.run(bot, settle_timeout=60) as env:
        _, ops, operator = add_ops_guild(env, bot)
        await env.advance_time(30 * 60)
        await bot.close()
        await env.advance_time(45 * 60)  # the bot is down for 45 minutes
        bot = create_bot(settings)
        await env.restart_bot(bot)
        await env.advance_time(30 * 60)
        buckets = await memory_cog(bot).cycle.history.load(env.now() - timedelta(hours=3))
        text = reply_text(await operator.slash(ops, "mem chart", hours=3))
        await bot.close()
    starts = [b.start for b in buckets]
    assert max((b - a).total_seconds() for a, b in itertools.pairwise(starts)) >= 45 * 60
    assert "1 gap(s) (restarts)" in text


class TestAlertCharts:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        # Any real RSS is above 0.1 % of the limit: the memory alert fires after 12 ticks (12 min),
        # when the history has two 5-minute points (an alert before that goes without a chart).
        return make_settings(tmp_path, alert_hysteresis_percent=0, alert_memory_percent=0.1, alert_for_checks=12)

    @staticmethod
    def memory_alerts(ops) -> list:
        return [m for m in ops.history() if m.embeds and "Memory above threshold" in (m.embeds[0].title or "")]

    async def test_a_memory_alert_carries_the_chart(self, world, simcord_env):
        _, ops, operator = world
        await operator.slash(ops, "mem alerts", channel=ops)
        await simcord_env.advance_time(15 * 60)
        (alert,) = self.memory_alerts(ops)
        assert alert.embeds[0].image.url == f"attachment://{CHART_FILENAME}"
        (attachment,) = alert.attachments
        assert Image.open(io.BytesIO(simcord_env.backend.cdn.get(attachment.url))).size == (WIDTH, HEIGHT)
        assert_within_discord_limits(alert.content, alert.embeds)

    async def test_an_alert_whose_chart_cannot_be_attached_is_posted_without_it_once(self, world, simcord_env, caplog):
        _, ops, operator = world
        await operator.slash(ops, "mem alerts", channel=ops)
        await simcord_env.advance_time(10 * 60)  # history for a chart; the alert is not yet due
        assert self.memory_alerts(ops) == []
        simcord_env.inject_error("POST", f"/channels/{ops.id}/messages", status=413, times=1)
        await simcord_env.advance_time(5 * 60)
        alerts = self.memory_alerts(ops)
        assert len(alerts) == 1
        assert not alerts[0].attachments and alerts[0].embeds[0].image.url is None
        assert any("could not be attached" in r.getMessage() for r in caplog.records)


async def test_a_leak_alert_s_chart_projects_the_alert_s_own_slope_and_eta(world, simcord_env, simcord_bot):
    """An alert said "80 % in 2.5 h" while its chart said 5.3 h: one slope, one ETA now."""
    from polly.alerts import hours_to_threshold
    from polly.chart import _chart_payload
    from polly.formatting import format_duration

    await simcord_env.advance_time(30 * 60)  # history for a chart
    cycle = memory_cog(simcord_bot).cycle
    latest = cycle.monitor.latest
    _, caption = await _chart_payload(cycle, 24, "t", slope_mib_per_hour=30.0)
    eta = format_duration(hours_to_threshold(latest, cycle.engine.thresholds.memory_percent, 30.0) * 3600)
    assert f"trend **+30.0 MiB/h**: 80 % in {eta}" in caption
