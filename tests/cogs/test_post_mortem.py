"""The post-mortem through the real bot in SimCord: a run that dies (no clean-stop mark) is reported
once by the next, in the alert channel, with the chart of the last day where the gap shows; one that
stops cleanly is not. (SimCord's clock keeps running across `restart_bot`, so the dead run's samples
are in the chart's past, as on a real host.)"""

from __future__ import annotations

import simcord

from bot.app import create_bot
from polly.ext.cog import memory_cog
from polly.run_journal import RunJournal
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits
from tests.settings import make_settings


def reports(ops) -> list:
    return [m for m in ops.history() if m.author.bot and m.embeds and m.embeds[0].title.startswith("💥 Previous run")]


async def test_a_run_that_died_is_reported_once_with_its_chart_and_a_clean_stop_is_not(tmp_path, monkeypatch):
    settings = make_settings(tmp_path, instance_name="bot-1")
    first = create_bot(settings)
    async with simcord.run(first) as env:
        _, ops, operator = add_ops_guild(env, first)
        await operator.slash(ops, "mem alerts", channel=ops)
        await env.advance_time(40 * 60)  # forty minutes of samples, then it dies

        async def killed(_journal: RunJournal) -> None:  # a process killed by the kernel never writes its stop mark
            return None

        monkeypatch.setattr(RunJournal, "stop", killed)
        await first.close()
        monkeypatch.undo()
        # the next start is another process (a start in this same process is a reload, not a death)
        monkeypatch.setattr("polly.run_journal.PROCESS_ID", "second")

        second = create_bot(settings)
        await env.restart_bot(second)
        await env.advance_time(2 * 60)
        (report,) = reports(ops)
        embed = report.embeds[0]
        assert embed.title == "💥 Previous run: Stopped without a clean shutdown"
        assert "ended without a clean stop after its last sample at 2026-01-01 00:40" in embed.description
        assert "Last figures: RSS" in embed.description and "What to do" in embed.description
        assert [a.filename for a in report.attachments] == ["memory-chart.png"]  # the last day, the gap in it
        assert embed.image.url == "attachment://memory-chart.png"
        assert_within_discord_limits(report.content, report.embeds)
        layer = memory_cog(second).layer
        assert layer.cycle.runs is not None and layer.cycle.runs.previous is not None
        await env.advance_time(5 * 60)
        assert len(reports(ops)) == 1  # delivered once

        await second.close()  # a clean stop this time
        monkeypatch.setattr("polly.run_journal.PROCESS_ID", "third")
        third = create_bot(settings)
        await env.restart_bot(third)
        await env.advance_time(3 * 60)
        assert len(reports(ops)) == 1  # nothing new to say
        assert memory_cog(third).layer.cycle.runs.previous is None  # type: ignore[union-attr]
        await third.close()
