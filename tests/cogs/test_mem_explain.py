"""/mem explain on real memory: the bot's process is put into four states (live Python objects,
fragmentation after a burst, native memory, a mapped file) and the part that holds the memory is
named, with the next step for it. Each state is measured against a checkpoint taken just before,
as an operator would, so what the test process held earlier does not decide the verdict."""

from __future__ import annotations

import pytest

from benchmarks.rss_states import burst_then_one_in_twenty, live_python_objects, mapped_file, native_memory
from polly.allocator_stats import detect_allocator
from polly.ext.cog import memory_cog
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, last_reply, reply_text

linux_glibc = pytest.mark.skipif(
    not detect_allocator().glibc or not detect_allocator().pymalloc, reason="needs glibc and pymalloc"
)


@linux_glibc
@pytest.mark.parametrize(
    ("state", "part", "sentence", "advice"),
    [
        ("objects", "Python objects", "live Python objects", "/mem inspect"),
        ("burst", "Python free space", "fragmentation, not a leak", "malloc_trim"),
        ("native", "malloc in use", "native memory or large objects", "/mem trace"),
        ("mapped", "mapped files", "mapped files, not the heap", "file pages"),
    ],
)
async def test_explain_names_the_part_that_holds_the_memory(
    simcord_env, simcord_bot, tmp_path, state, part, sentence, advice
):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    await operator.slash(ops, "mem checkpoint", label="before")
    states = {
        "objects": live_python_objects,
        "burst": burst_then_one_in_twenty,
        "native": native_memory,
        "mapped": lambda: mapped_file(tmp_path),
    }
    with states[state]():
        memory_cog(simcord_bot).monitor.sample()  # the next tick's sample: RSS now
        result = await operator.slash(ops, "mem explain", compare_to="before")
        stats = await operator.slash(ops, "mem stats")
    assert result.ephemeral
    embed = last_reply(result).embeds[0]
    assert embed.description.startswith(f"**{part} grew by "), embed.description
    assert sentence in embed.description and advice in embed.description
    grown = float(embed.description.removeprefix(f"**{part} grew by ").split(" MiB")[0])
    assert grown >= (100 if state == "burst" else 180), embed.description
    table = next(f for f in embed.fields if f.name.startswith("RSS ")).value
    assert "since checkpoint" in table and part in table
    assert "`before`" in reply_text(result)
    if state == "burst":  # free space: what the last heap trim gave back, or that none ran
        assert any(f.name == "Last heap trim" for f in embed.fields)
    assert_within_discord_limits(last_reply(result).content, last_reply(result).embeds)
    # /mem stats shows the same breakdown in one field, with its verdict and the way to the details.
    field = next(f for f in last_reply(stats).embeds[0].fields if f.name == "Where the RSS is").value
    assert "Python objects" in field and "Details: /mem explain" in field


@linux_glibc
async def test_explain_compares_with_the_newest_automatic_checkpoint_and_says_its_sources(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    newest = (await memory_cog(simcord_bot).monitor.list_checkpoints(automatic=True, limit=1))[0]
    await operator.slash(ops, "mem checkpoint", label="manual, not the default")
    text = reply_text(await operator.slash(ops, "mem explain"))
    assert f"`{newest.label}`" in text and "manual, not the default" not in text
    assert "Most of RSS is" in text or "free space" in text
    assert "malloc: glibc" in text and "Python's small objects: pymalloc" in text and "threads" in text
    assert "arenas; MALLOC_ARENA_MAX" in text


async def test_an_unknown_checkpoint_is_refused_with_what_is_allowed(simcord_env, simcord_bot):
    _, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    result = await operator.slash(ops, "mem explain", compare_to="no-such-label")
    assert result.ephemeral
    assert "no-such-label" in reply_text(result)
