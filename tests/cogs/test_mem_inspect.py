"""The leak hunt through the real bot: a checkpoint comparison names the leaking type, /mem inspect
counts it and shows who holds it, and no reply ever carries an object's contents."""

from __future__ import annotations

import pytest

from polly.ext.cog import memory_cog
from polly.offline import demo_leak
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, last_reply, reply_text

SECRET = "hunter2-do-not-show-this"


@pytest.fixture(autouse=True)
def _no_leftover_widgets():
    demo_leak.release()
    yield
    demo_leak.release()


def all_reply_text(result) -> str:
    """Everything a user could see in a reply, including the raw embed payloads."""
    messages = [m for m in [result.response, *result.followups] if m is not None]
    return reply_text(result) + "".join(str([e.to_dict() for e in m.embeds]) for m in messages)


async def test_a_leaked_type_is_named_by_the_comparison_and_inspect_shows_who_holds_it(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem checkpoint", label="a")
    demo_leak.leak(3000, secret=SECRET)
    compared = await operator.slash(ops, "mem checkpoint", label="b", compare_to="a")
    embed = last_reply(compared).embeds[0]
    growing = next(f.value for f in embed.fields if f.name.startswith("Growing types"))
    first_row = growing.splitlines()[3]  # ```, header, rule, then the biggest growth
    assert first_row.startswith("polly.offline.demo_leak.LeakyWidget") and "+3,000" in first_row

    result = await operator.slash(ops, "mem inspect", type="LeakyWidget")
    assert result.ephemeral
    text = reply_text(result)
    assert "Inspect: polly.offline.demo_leak.LeakyWidget" in text
    assert "**3,000** live objects" in text
    assert "polly.offline.demo_leak.leaked_widgets (list) → LeakyWidget" in text
    assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)
    for reply in (compared, result):
        assert SECRET not in all_reply_text(reply)
        assert "LeakyWidget(number=" not in all_reply_text(reply)


async def test_inspect_suggests_what_grew_first(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem checkpoint", label="a")
    demo_leak.leak(2000)
    await operator.slash(ops, "mem checkpoint", label="b", compare_to="a")
    choices = await operator.autocomplete(ops, "mem inspect", "type", "")
    assert choices[0]["value"] == "polly.offline.demo_leak.LeakyWidget"
    narrowed = await operator.autocomplete(ops, "mem inspect", "type", "leaky")
    assert [c["value"] for c in narrowed] == ["polly.offline.demo_leak.LeakyWidget"]


async def test_an_unknown_type_gets_close_matches_and_an_untracked_one_says_why(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    demo_leak.leak(10)
    typo = await operator.slash(ops, "mem inspect", type="LeakyWidgit")
    assert "No live object has the type 'LeakyWidgit'" in last_reply(typo).content
    assert "polly.offline.demo_leak.LeakyWidget" in last_reply(typo).content
    untracked = await operator.slash(ops, "mem inspect", type="str")
    assert "not tracked by the garbage collector" in last_reply(untracked).content


async def test_a_repr_holding_a_secret_never_appears_in_any_reply(simcord_env, simcord_bot):
    """A planted object whose repr carries a secret, inspected and compared in every way."""
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    demo_leak.leak(50, secret=SECRET)
    simcord_bot.planted = demo_leak.leaked_widgets[0]
    replies = [
        await operator.slash(ops, "mem checkpoint", label="x"),
        await operator.slash(ops, "mem inspect", type="polly.offline.demo_leak.LeakyWidget"),
        await operator.slash(ops, "mem stats"),
        await operator.slash(ops, "mem checkpoint", label="y", compare_to="x"),
    ]
    for result in replies:
        assert SECRET not in all_reply_text(result)


async def test_a_trace_stops_by_itself_and_posts_the_growth_with_call_paths(simcord_env, simcord_bot):
    import tracemalloc

    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem alerts", channel=ops)
    started = await operator.slash(ops, "mem trace", minutes=2)
    assert started.ephemeral and "until 00:02 UTC" in started.response.content
    assert tracemalloc.is_tracing()
    again = await operator.slash(ops, "mem trace", minutes=5)
    assert "running until 00:02 UTC" in last_reply(again).content
    demo_leak.leak(2000)
    await simcord_env.advance_time(3 * 60)
    assert not tracemalloc.is_tracing()
    posts = [m for m in ops.history() if m.embeds and "Allocation trace" in (m.embeds[0].title or "")]
    assert len(posts) == 1
    growth = posts[0].embeds[0].fields[0].value
    assert "polly/offline/demo_leak.py:" in growth
    assert_within_discord_limits(posts[0].content, posts[0].embeds)
    assert memory_cog(simcord_bot).cycle.traces.session is None


async def test_a_trace_needs_an_alert_channel(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    refused = await operator.slash(ops, "mem trace", minutes=1)
    assert "No alert channel is set" in last_reply(refused).content
    assert memory_cog(simcord_bot).cycle.traces.session is None
