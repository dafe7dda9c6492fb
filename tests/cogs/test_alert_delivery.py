"""Alert delivery exactly once: through outages, floods, restarts and concurrent deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
import simcord
from sqlalchemy import select

from bot.app import create_bot
from polly.alert_outbox import MAY_REPEAT_NOTE
from polly.ext.cog import memory_cog
from polly.models import alert_events
from polly.registry import registry
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, reply_text
from tests.settings import make_settings

FLOOD = 30


def settings_for(tmp_path):
    return make_settings(tmp_path, alert_dict_fill_percent=50, alert_for_checks=1, alert_hysteresis_percent=5)


@pytest.fixture
def bot_settings(tmp_path):
    return settings_for(tmp_path)


@pytest.fixture
def flood():
    """FLOOD structures that are all over the fill threshold, so FLOOD alerts fire at once."""
    names = [f"flooded_{i:02d}" for i in range(FLOOD)]
    for name in names:
        registry.bounded_dict(name, max_size=10).update({k: k for k in range(9)})
    yield names
    for name in names:
        registry.unregister(name)


@contextlib.contextmanager
def filling_structure(name: str):
    """One tracked structure above the fill threshold (one alert), unregistered afterwards."""
    registry.bounded_dict(name, max_size=10).update({k: k for k in range(9)})
    try:
        yield registry.get(name).target
    finally:
        registry.unregister(name)


def posted(channel) -> list:
    return [m for m in channel.history() if m.author.bot and m.embeds]


def fired_subjects(channel) -> list[str]:
    """Subjects of individual 'fired' posts plus the subjects listed in summaries."""
    subjects = []
    for message in posted(channel):
        embed = message.embeds[0]
        if (embed.title or "").startswith("🔴"):
            subjects += [f.value.split(" · ")[1] for f in embed.fields if f.name == "Rule"]
        elif (embed.title or "").startswith("📋"):
            subjects += [line.rsplit(" · ", 1)[1] for line in (embed.description or "").splitlines() if "fired" in line]
    return subjects


async def delivered_flags(bot) -> list[bool]:
    async with bot.db.transaction() as conn:
        return list(await conn.scalars(select(alert_events.c.delivered).order_by(alert_events.c.id)))


async def test_a_flood_during_an_outage_is_delivered_once_after_it_ten_posts_and_one_summary(
    simcord_env, simcord_bot, flood
):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem alerts", channel=ops)
    simcord_env.inject_error("POST", f"/channels/{ops.id}/messages", status=503, times=None)
    await simcord_env.advance_time(5 * 60)  # five ticks of outage
    assert posted(ops) == []
    assert memory_cog(simcord_bot).cycle.health.undelivered >= FLOOD
    assert await delivered_flags(simcord_bot) == [False] * FLOOD  # stored before delivery

    simcord_env.backend.faults.clear()
    await simcord_env.advance_time(60)
    messages = posted(ops)
    assert len(messages) == 11  # ten alerts, then one summary of the rest
    assert messages[-1].embeds[0].title.startswith(f"📋 {FLOOD - 10} more alert event(s)")
    assert sorted(fired_subjects(ops)) == sorted(flood)  # every alert exactly once
    assert all(await delivered_flags(simcord_bot))
    for message in messages:
        assert_within_discord_limits(message.content, message.embeds)
    await simcord_env.advance_time(5 * 60)
    assert len(posted(ops)) == 11  # nothing posted twice


async def test_two_deliveries_at_once_post_each_alert_once(simcord_env, simcord_bot, flood):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem alerts", channel=ops)
    simcord_env.inject_error("POST", f"/channels/{ops.id}/messages", status=503, times=None)
    await simcord_env.advance_time(60)
    simcord_env.backend.faults.clear()
    cog = simcord_bot.get_cog("MemoryCog")
    results = await asyncio.gather(cog.deliver_alerts(), cog.deliver_alerts())
    assert sorted(results) == [0, FLOOD]
    assert sorted(fired_subjects(ops)) == sorted(flood)


async def test_an_alert_the_database_refused_still_goes_out_once(simcord_env, simcord_bot, monkeypatch, flood):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem alerts", channel=ops)

    async def refuse(*_args, **_kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(memory_cog(simcord_bot).store, "record", refuse)
    await simcord_env.advance_time(60)
    assert sorted(fired_subjects(ops)) == sorted(flood)
    assert len(memory_cog(simcord_bot).cycle.alerts.memory) == 0


async def test_a_restart_delivers_what_waited_and_remembers_what_fires(tmp_path, caplog):
    """Bot A fires during an outage and stops; bot B, on the same database, posts the waiting alert
    once, does not fire it again as new, and posts its resolution."""
    caplog.set_level(logging.INFO)
    settings = settings_for(tmp_path)
    with filling_structure("restart_leak") as leak:
        first = create_bot(settings)
        async with simcord.run(first) as env:
            _, ops, operator = add_ops_guild(env, first)
            env.inject_error("POST", f"/channels/{ops.id}/messages", status=503, times=None)
            await operator.slash(ops, "mem alerts", channel=ops)  # fired at the first tick, cannot be posted
            await env.advance_time(3 * 60)
            assert posted(ops) == []
            assert [a.subject for a in memory_cog(first).cycle.engine.active()] == ["restart_leak"]
            await first.close()

        second = create_bot(settings)
        async with simcord.run(second) as env:
            _, ops, operator = add_ops_guild(env, second)
            assert [a.subject for a in memory_cog(second).cycle.engine.active()] == ["restart_leak"]  # restored
            await operator.slash(ops, "mem alerts", channel=ops)  # the channel is set anew: delivery
            await env.advance_time(3 * 60)
            assert fired_subjects(ops) == ["restart_leak"]  # once, from before the restart
            leak.clear()
            await env.advance_time(60)
            titles = [m.embeds[0].title for m in posted(ops)]
            assert sum(t.startswith("🟢 Resolved: Tracked structure filling up") for t in titles) == 1
            assert sum(t.startswith("🔴") for t in titles) == 1
            await second.close()
        assert any("Restored 1 firing alert(s)" in r.getMessage() for r in caplog.records)


async def test_a_post_whose_mark_failed_says_it_may_repeat_after_a_late_restart(tmp_path, monkeypatch):
    """The restart gap: bot A posts, the database refuses the "delivered" mark, A stops. Bot B, on the
    same database (its alert channel stored by A), posts it again with the same nonce (Discord drops a
    repeat within minutes) and, that late, with a note: never a silent double post."""
    settings = settings_for(tmp_path)
    with filling_structure("restart_gap"):
        first = create_bot(settings)
        async with simcord.run(first) as env:
            _, ops, operator = add_ops_guild(env, first)

            async def refuse(*_args, **_kwargs):
                raise RuntimeError("database is locked")

            monkeypatch.setattr(memory_cog(first).store, "mark_delivered", refuse)
            await operator.slash(ops, "mem alerts", channel=ops)
            assert fired_subjects(ops) == ["restart_gap"]
            await env.advance_time(2 * 60)
            assert fired_subjects(ops) == ["restart_gap"]  # this process never posts it twice
            nonces = [r.json.get("nonce") for r in env.http_requests if r.path == f"/channels/{ops.id}/messages"]
            await first.close()
        assert len(nonces) == 1 and nonces[0]

        second = create_bot(settings)
        async with simcord.run(second) as env:
            _, ops, operator = add_ops_guild(env, second)
            env.inject_error("POST", f"/channels/{ops.id}/messages", status=503, times=None)
            await env.advance_time(10 * 60)  # Discord refuses for ten minutes: the nonce no longer helps
            env.backend.faults.clear()
            await env.advance_time(60)
            reposted = [m for m in posted(ops) if m.embeds[0].title.startswith("🔴")]
            assert len(reposted) == 1 and reposted[0].content == MAY_REPEAT_NOTE
            sent = [r.json for r in env.http_requests if r.path == f"/channels/{ops.id}/messages"]
            assert {r["nonce"] for r in sent} == {nonces[0]} and sent[-1]["enforce_nonce"] is True
            assert all(await delivered_flags(second))
            await second.close()


async def test_a_deleted_alert_channel_is_said_as_such_and_is_no_tick_error(simcord_env, simcord_bot, caplog):
    """A channel that no longer exists (deleted, or one of an earlier simulated Discord) is the
    operator's to change, not a failing tick: the alert waits, the log says why, errors stay 0."""
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem alerts", channel=ops)
    simcord_env.backend.delete_channel(ops.id)
    health = memory_cog(simcord_bot).cycle.health
    errors = health.errors
    with filling_structure("gone_channel"):
        await simcord_env.advance_time(3 * 60)
        assert health.errors == errors and health.undelivered == 1
        assert any(f"the alert channel {ops.id} no longer exists" in r.getMessage() for r in caplog.records)


async def test_alert_figures_carry_their_units(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem alerts", channel=ops)
    with filling_structure("unit_fill"):
        await simcord_env.advance_time(60)
        (post,) = [m for m in posted(ops) if m.embeds[0].title.startswith("🔴")]
        fields = {f.name: f.value for f in post.embeds[0].fields}
        assert fields["Value / threshold"] == "90.0 % / 50 %"
        overview = reply_text(await operator.slash(ops, "mem alerts"))
        assert "unit_fill: 90.0 % (threshold 50 %)" in overview
        assert "% of a structure's limit" in overview and "MiB/h" in overview and "checks" in overview


async def test_a_summary_that_cannot_name_every_alert_attaches_the_complete_list(simcord_env, simcord_bot):
    names = [f"a_structure_with_a_rather_long_descriptive_name_{i:03d}" for i in range(80)]
    for name in names:
        registry.bounded_dict(name, max_size=10).update({k: k for k in range(9)})
    try:
        _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
        await operator.slash(ops, "mem alerts", channel=ops)
        await simcord_env.advance_time(60)
        (summary,) = [m for m in posted(ops) if m.embeds[0].title.startswith("📋")]
        assert "are in the attached alerts.txt" in summary.embeds[0].description
        assert_within_discord_limits(summary.content, summary.embeds)
        (listing,) = summary.attachments
        text = simcord_env.backend.cdn.get(listing.url).decode()
        individually = {s for s in fired_subjects(ops) if s in names} - {
            line.rsplit(" · ", 1)[1] for line in summary.embeds[0].description.splitlines() if "fired" in line
        }
        rows = text.splitlines()
        assert len(rows) == 80 - len(individually) == 70  # every event of the summary, none lost
        assert {row.split("\t")[3] for row in rows} == set(names) - individually
        assert all(row.split("\t")[4] == "90.0 %" and "UTC" in row for row in rows)
    finally:
        for name in names:
            registry.unregister(name)
