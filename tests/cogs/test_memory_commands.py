"""/mem commands as an operator, through SimCord and the real discord.py machinery."""

from __future__ import annotations

import asyncio
import sqlite3
import tracemalloc

import discord
import pytest

from bot import poll_checks as bt
from polly.ext.cog import memory_cog
from polly.formatting import format_bytes
from polly.memory_utils import registry
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits, last_reply, reply_text
from tests.settings import make_settings


@pytest.fixture
def world(simcord_env, simcord_bot):
    """A guild with an ops channel and an operator who is also a server admin."""
    return add_ops_guild(simcord_env, simcord_bot)


@pytest.fixture
def scratch_structure():
    """A tracked structure over its limit, removed from the registry afterwards."""
    cache = registry.register("test_scratch_cache", {f"k{i}": i for i in range(30)}, max_size=10)
    yield cache
    registry.unregister("test_scratch_cache")


async def test_stats_is_ephemeral_and_renders_the_latest_sample(world, simcord_bot):
    _, ops, operator = world
    result = await operator.slash(ops, "mem stats")
    assert result.ephemeral
    text = reply_text(result)
    sample = memory_cog(simcord_bot).monitor.latest
    assert format_bytes(sample.rss) in text
    assert f"{sample.percent_of_limit:.1f} %" in text and sample.limit_source in text
    assert "Tracked structures" in text and "message_fetch_failures" in text and "```" in text
    assert "gen0:" in text and "lag" in text and "gateway latency" in text
    assert "RSS trend" in text and "Database pool" in text
    assert "ticks" in text and "errors" in text
    assert_within_discord_limits(result.response.content, result.response.embeds)


async def test_stats_says_how_old_its_sample_is(world, simcord_env):
    """The figures are the last tick's while it is recent: the footer says how old they are."""
    _, ops, operator = world
    await simcord_env.advance_time(60)
    await simcord_env.advance_time(30)  # half an interval after the tick
    footer = last_reply(await operator.slash(ops, "mem stats")).embeds[0].footer.text
    assert footer.endswith("UTC, 30.0 s ago"), footer


async def test_stats_says_when_the_monitor_loop_stopped_though_monitoring_is_on(world, simcord_bot):
    _, ops, operator = world
    cog = simcord_bot.get_cog("MemoryCog")
    task = cog.monitor_loop.get_task()
    cog.monitor_loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = reply_text(await operator.slash(ops, "mem stats"))
    assert "stopped (see the log)" in text and "MEMORY_MONITORING=false" not in text


async def test_cleanup_reports_per_structure_and_is_announced_in_the_alert_channel(
    world, simcord_bot, scratch_structure
):
    _, ops, operator = world
    await operator.slash(ops, "mem alerts", channel=ops)
    result = await operator.slash(ops, "mem cleanup")
    assert result.ephemeral
    text = reply_text(result)
    assert "Cleanup done" in text
    row = next(line for line in text.splitlines() if line.startswith("test_scratch_cache"))
    assert row.split() == ["test_scratch_cache", "30", "10", "20"]
    assert "gen 2:" in text and "objects collected" in text
    # Each step says what it moved or gave back, measured by the breakdown before and after it.
    collection = next(f.value for f in last_reply(result).embeds[0].fields if f.name == "Garbage collection")
    assert "; RSS " in collection.splitlines()[1]
    trim = next(f.value for f in last_reply(result).embeds[0].fields if f.name == "Heap trim (malloc_trim)")
    assert trim.startswith("off the event loop, ") and ": RSS " in trim
    assert "→" in text  # RSS before → after
    assert len(scratch_structure) == 10
    announcement = ops.last_message.embeds[0]
    assert "Memory cleanup run by olivia" in announcement.title
    assert "Removed 20 entries" in announcement.description
    assert "(collection " in announcement.description and ", trim " in announcement.description
    # A second cleanup within the minute does not trim again: it says so.
    again = await operator.slash(ops, "mem cleanup")
    trim = next(f.value for f in last_reply(again).embeds[0].fields if f.name == "Heap trim (malloc_trim)")
    assert trim == "skipped: the last trim ran 0 ms ago; one runs at most every 1 min", trim


async def test_cleanup_dry_run_reports_and_changes_nothing(world, scratch_structure):
    _, ops, operator = world
    result = await operator.slash(ops, "mem cleanup", dry_run=True)
    text = reply_text(result)
    assert "dry run: nothing was changed" in text
    assert "would remove" in text
    assert len(scratch_structure) == 30


async def test_second_cleanup_while_one_runs_is_told_at_once(world, simcord_bot, scratch_structure):
    """While another operator's cleanup holds the guard, a second /mem cleanup is refused immediately."""
    _, ops, operator = world
    memory_cog(simcord_bot).cycle.cleanups.owner = ("bob", memory_cog(simcord_bot).monitor.clock())
    try:
        result = await operator.slash(ops, "mem cleanup")
    finally:
        memory_cog(simcord_bot).cycle.cleanups.owner = None
    assert result.ephemeral
    assert "A cleanup is already running (started by bob" in result.response.content
    assert len(scratch_structure) == 30


async def test_concurrent_manual_cleanups_one_runs_the_other_is_refused(simcord_bot, simcord_env):
    """Two cleanups started together in the bot's loop: exactly one runs."""
    import asyncio

    from polly.cleanups import CleanupRunningError

    async def run(who):
        return await memory_cog(simcord_bot).cycle.cleanups.manual(who, dry_run=True)

    results = await asyncio.gather(run("a"), run("b"), return_exceptions=True)
    assert sum(isinstance(r, CleanupRunningError) for r in results) == 1
    assert memory_cog(simcord_bot).cycle.cleanups.owner is None


async def test_pool_shows_limits_live_figures_counters_and_status(world):
    _, ops, operator = world
    result = await operator.slash(ops, "mem pool")
    text = reply_text(result)
    assert result.ephemeral
    assert "AsyncAdaptedQueuePool" in text and "✅ ok" in text
    assert "size 1 · max overflow 0" in text  # SQLite: overlapping work waits for the one connection
    assert "checked out 0" in text and "overflow checkouts" in text and "timeouts" in text


async def test_pool_shows_timeouts_in_the_status_line(world, simcord_bot):
    _, ops, operator = world
    simcord_bot.db.monitor.record_timeout()
    text = reply_text(await operator.slash(ops, "mem pool"))
    assert "timeouts seen: 1" in text


class TestMemorySqlite:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, database_url="sqlite+aiosqlite:///:memory:")

    async def test_pool_without_sizing_says_so_plainly(self, world):
        _, ops, operator = world
        text = reply_text(await operator.slash(ops, "mem pool"))
        assert "StaticPool" in text and "no sized pool" in text and "DB_POOL_SIZE" in text


async def test_checkpoint_compares_with_the_previous_one_and_with_a_named_one(world, simcord_bot):
    _, ops, operator = world
    first = await operator.slash(ops, "mem checkpoint", label="before-deploy")
    assert first.ephemeral
    assert "Checkpoint 'before-deploy' stored" in reply_text(first)
    assert "Since 'auto 2026-01-01 00:00:00 UTC'" in reply_text(first)  # the automatic one at start

    bt.record_failure(424242, "cached_channel")
    try:
        second = reply_text(await operator.slash(ops, "mem checkpoint", label="after"))
    finally:
        bt.forget_failure(424242)
    assert "Since 'before-deploy'" in second and "RSS " in second and "%" in second
    assert "message_fetch_failures" in second and "+1" in second
    assert "GC-tracked objects" in second

    named = reply_text(await operator.slash(ops, "mem checkpoint", compare_to="before-deploy"))
    assert "Since 'before-deploy'" in named
    assert "2026-01-01 00:00:00 UTC" in named  # default label is the UTC time


async def test_unknown_compare_to_and_duplicate_label_are_clear_errors_that_store_nothing(world, simcord_bot):
    _, ops, operator = world
    await operator.slash(ops, "mem checkpoint", label="one")
    count = await memory_cog(simcord_bot).monitor.refresh_checkpoint_count()

    unknown = await operator.slash(ops, "mem checkpoint", label="two", compare_to="nope")
    assert unknown.ephemeral
    assert "No checkpoint is named 'nope'" in last_reply(unknown).content
    duplicate = await operator.slash(ops, "mem checkpoint", label="one")
    assert "A checkpoint named 'one' already exists" in last_reply(duplicate).content
    assert await memory_cog(simcord_bot).monitor.refresh_checkpoint_count() == count


async def test_a_label_with_a_nul_byte_or_nothing_visible_is_refused_with_what_is_allowed(world, simcord_bot):
    _, ops, operator = world
    count = await memory_cog(simcord_bot).monitor.refresh_checkpoint_count()
    nul = await operator.slash(ops, "mem checkpoint", label="a\x00b")
    assert nul.ephemeral and "cannot contain control characters (found U+0000)" in last_reply(nul).content
    blank = await operator.slash(ops, "mem checkpoint", label="\u200b\u200b")
    assert "needs at least one visible character" in last_reply(blank).content
    assert await memory_cog(simcord_bot).monitor.refresh_checkpoint_count() == count


async def test_a_refused_checkpoint_with_trace_leaves_tracing_as_it_was(world, simcord_bot):
    _, ops, operator = world
    await operator.slash(ops, "mem checkpoint", label="one")
    try:
        duplicate = await operator.slash(ops, "mem checkpoint", label="one", trace=True)
        assert "already exists" in last_reply(duplicate).content
        assert memory_cog(simcord_bot).monitor.tracing is False  # tracemalloc's ~10x slowdown not left on
    finally:
        memory_cog(simcord_bot).monitor.set_tracing(False)


async def test_a_command_while_the_database_is_locked_says_so_and_changes_nothing(world, simcord_bot):
    """Another connection holds SQLite's write lock: after the busy timeout the operator is told the
    database is unavailable and that nothing changed, not "Sorry, that went wrong"."""
    _, ops, operator = world
    count = await memory_cog(simcord_bot).monitor.refresh_checkpoint_count()
    async with simcord_bot.db.engine.connect() as conn:  # the one pooled connection: wait 0.2 s, not 5
        await conn.exec_driver_sql("PRAGMA busy_timeout=200")
    locker = sqlite3.connect(simcord_bot.settings.sqlite_path(), timeout=1)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        result = await operator.slash(ops, "mem checkpoint", label="while-locked")
    finally:
        locker.rollback()
        locker.close()
    text = last_reply(result).content
    assert result.ephemeral
    assert "database is unavailable" in text and "database is locked" in text and "nothing was changed" in text
    assert "INSERT" not in text
    assert await memory_cog(simcord_bot).monitor.refresh_checkpoint_count() == count
    assert await memory_cog(simcord_bot).monitor.get_checkpoint("while-locked") is None


async def test_compare_to_is_autocompleted_from_stored_checkpoints(world):
    _, ops, operator = world
    for label in ("release-1", "release-2", "other"):
        await operator.slash(ops, "mem checkpoint", label=label)
    choices = await operator.autocomplete(ops, "mem checkpoint", "compare_to", "release")
    assert [c["value"] for c in choices] == ["release-2", "release-1"]


async def test_trace_turns_tracemalloc_on_states_its_cost_and_shows_allocation_growth(world, simcord_bot):
    _, ops, operator = world
    try:
        on = reply_text(await operator.slash(ops, "mem checkpoint", label="traced-1", trace=True))
        assert "tracemalloc is **on**" in on and "10x slower" in on
        hoard = [bytes(4096) for _ in range(3000)]  # noqa: F841 - kept alive on purpose
        grown = reply_text(await operator.slash(ops, "mem checkpoint", label="traced-2"))
        assert "Top allocation growth" in grown
        assert "test_memory_commands.py" in grown
        off = reply_text(await operator.slash(ops, "mem checkpoint", label="untraced", trace=False))
        assert "tracemalloc is off" in off
    finally:
        memory_cog(simcord_bot).monitor.set_tracing(False)


async def test_a_trace_can_start_right_after_the_previous_one_posted_its_results(world, simcord_env, simcord_bot):
    """The trace ends with its results and frees its slot (a relative tasks.loop used to sleep one more
    trace length, and the next /mem trace failed with "Task is already launched")."""
    _, ops, operator = world
    await operator.slash(ops, "mem alerts", channel=ops)
    try:
        for _ in range(2):
            started = reply_text(await operator.slash(ops, "mem trace", minutes=1))
            assert "Tracing allocations" in started and tracemalloc.is_tracing()
            await simcord_env.advance_time(61)
            for _ in range(40):  # the comparison runs in a thread: wait for its post in real time
                if not tracemalloc.is_tracing() and memory_cog(simcord_bot).cycle.traces.session is None:
                    break
                await asyncio.sleep(0.05)
                await simcord_env.settle()
            assert not tracemalloc.is_tracing() and memory_cog(simcord_bot).cycle.traces.session is None
        assert sum("trace" in (m.embeds[0].title or "").lower() for m in ops.history() if m.embeds) == 2
    finally:
        memory_cog(simcord_bot).monitor.set_tracing(False)


async def test_alerts_sets_a_persisted_channel_and_posts_a_test(world, simcord_bot):
    _guild, ops, operator = world
    before = reply_text(await operator.slash(ops, "mem alerts"))
    assert "not set: choose one with /mem alerts channel:" in before

    result = await operator.slash(ops, "mem alerts", channel=ops, test=True)
    assert result.ephemeral
    assert f"Alerts now go to {ops.mention}" in reply_text(result)
    assert "Test message posted" in reply_text(result)
    assert ops.last_message.embeds[0].title == "✅ Test alert"
    text = reply_text(result)
    assert "memory_percent" in text and "nothing is firing" in text and "none yet" in text
    assert await memory_cog(simcord_bot).store.alert_channel_id(None) == ops.id


async def test_alerts_defers_before_its_database_work_and_posts(world, simcord_env):
    """It reads and writes the database and may post up to ten messages: past Discord's three seconds
    on a real gateway unless its first answer is a deferral (private, like every /mem answer)."""
    _guild, ops, operator = world
    for options in ({}, {"channel": ops, "test": True}, {"threshold": "memory_percent", "value": 85.0}):
        seen = len(simcord_env.http_requests)
        result = await operator.slash(ops, "mem alerts", **options)
        callbacks = [r.json for r in simcord_env.http_requests[seen:] if r.path.endswith("/callback")]
        assert [c["type"] for c in callbacks] == [5], options  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        assert callbacks[0]["data"]["flags"] & 64 and result.ephemeral  # ephemeral
        assert "Memory alerts" in reply_text(result)


async def test_gateway_latency_before_the_first_heartbeat_is_said_as_not_measured(world, simcord_bot, monkeypatch):
    _guild, ops, operator = world
    for before_heartbeat in (float("inf"), float("nan")):  # what discord.py reports until then
        monkeypatch.setattr(type(simcord_bot), "latency", property(lambda _bot, v=before_heartbeat: v))
        text = reply_text(await operator.slash(ops, "mem stats"))
        assert "gateway latency not measured yet" in text and "inf ms" not in text and "nan" not in text


async def test_alerts_test_reports_a_channel_the_bot_cannot_post_in(world, simcord_env, simcord_bot):
    guild, ops, operator = world
    locked = guild.create_text_channel(
        "locked", overwrites={guild.me: discord.PermissionOverwrite(send_messages=False)}
    )
    result = await operator.slash(ops, "mem alerts", channel=locked, test=True)
    assert "I cannot post in" in result.response.content and "Send Messages" in result.response.content


async def test_alerts_changes_a_threshold_persists_it_and_rejects_bad_values(world, simcord_bot):
    _, ops, operator = world
    result = await operator.slash(ops, "mem alerts", threshold="memory_percent", value=85.0)
    assert "Threshold memory_percent is now 85." in result.response.content
    assert "memory_percent             85" in reply_text(result)
    assert memory_cog(simcord_bot).cycle.engine.thresholds.memory_percent == 85
    assert await memory_cog(simcord_bot).store.thresholds() == {"memory_percent": 85.0}

    too_big = await operator.slash(ops, "mem alerts", threshold="memory_percent", value=150.0)
    assert "memory_percent = 150 is not allowed (above 100): percent, > 0 and <= 100" in too_big.response.content
    half = await operator.slash(ops, "mem alerts", threshold="for_checks")
    assert "Give both" in half.response.content
    assert memory_cog(simcord_bot).cycle.engine.thresholds.memory_percent == 85

    await simcord_bot.reload_extension("polly")  # a new cog reads the stored thresholds
    memory_cog(simcord_bot).cycle.engine.set_threshold("memory_percent", 80)
    await simcord_bot.reload_extension("polly")
    assert memory_cog(simcord_bot).cycle.engine.thresholds.memory_percent == 85


async def test_an_unexpected_error_gets_a_short_apology_and_a_logged_traceback(
    world, simcord_env, simcord_bot, monkeypatch, caplog
):
    _, ops, operator = world

    def broken():
        raise RuntimeError("pool status exploded")

    monkeypatch.setattr(simcord_bot.db, "get_pool_status", broken)
    result = await operator.slash(ops, "mem pool")
    assert result.ephemeral
    assert "Sorry, that went wrong on our side" in result.response.content
    assert "exploded" not in result.response.content  # details stay in the log
    assert any(r.exc_info and "exploded" in str(r.exc_info[1]) for r in caplog.records)
    assert [type(e).__name__ for e in simcord_env.errors] == ["CommandInvokeError"]  # acknowledged


async def test_stats_shows_the_age_of_the_oldest_tracked_entry(world, simcord_env, simcord_bot):
    _, ops, operator = world
    bt.record_failure(1, "cached_channel")
    await simcord_env.advance_time(5 * 60)
    text = reply_text(await operator.slash(ops, "mem stats"))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("structure"))
    row = next(line for line in lines if line.startswith("message_fetch_failures"))
    oldest = row[header.index("oldest") : header.index("est. size")].split()
    assert oldest == ["5", "min"]
    assert row[header.index("est. size") :].strip() == "< 0.1 MiB"  # the estimate: a few hundred bytes


async def test_a_discord_5xx_on_the_follow_up_is_a_warning_and_the_checkpoint_is_stored(
    world, simcord_env, simcord_bot, caplog
):
    """Not the bot's fault: one warning line, no "Unexpected error" traceback; the work was done."""
    _, ops, operator = world
    simcord_env.inject_error("POST", f"/webhooks/{simcord_bot.application_id}/*", status=503, times=None)
    try:
        await operator.slash(ops, "mem checkpoint", label="kept")
    except Exception:
        pass  # SimCord may report the reply that never came; what matters is below
    finally:
        simcord_env.backend.faults.clear()
    assert [c.label for c in await memory_cog(simcord_bot).monitor.list_checkpoints(automatic=False)] == ["kept"]
    assert "Discord could not take the answer" in caplog.text
    assert "Unexpected error" not in caplog.text and "Traceback" not in caplog.text
