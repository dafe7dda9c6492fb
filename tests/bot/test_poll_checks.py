"""Polly's poll-message checks against SimCord, and the bounded failure tracking."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from bot import poll_checks as bt
from bot.models import PollStatus, polls
from polly.memory_utils import registry
from tests.conftest import REPO_ROOT
from tests.settings import make_settings


async def add_poll(bot, channel_id: int, message_id: int, status=PollStatus.ACTIVE) -> int:
    async with bot.db.transaction() as conn:
        added = await conn.execute(
            insert(polls)
            .values(
                name="lunch",
                question="Where?",
                options=["a", "b"],
                server_id=1,
                channel_id=channel_id,
                creator_id=1,
                message_id=message_id,
                status=status,
                created_at=datetime.now(UTC),
            )
            .returning(polls.c.id)
        )
        return added.scalar_one()


async def poll_ids(bot) -> list[int]:
    async with bot.db.transaction() as conn:
        return list(await conn.scalars(select(polls.c.id)))


def test_failure_tracking_is_registered_and_bounded_by_settings(tmp_path):
    bt.configure(make_settings(tmp_path, max_failure_entries=50, failure_cleanup_age=5))
    stat = {s.name: s for s in registry.stats()}["message_fetch_failures"]
    assert (stat.limit, stat.max_age_minutes, stat.bounded) == (50, 5, True)
    for poll_id in range(5000):
        bt.record_failure(poll_id, "cached_channel")
        assert len(bt.message_fetch_failures) <= 50
    assert sorted(bt.message_fetch_failures) == list(range(4950, 5000))
    assert "startup_warning_counts" in registry


def test_record_failure_counts_attempts_and_methods():
    bt.record_failure(7, "cached_channel", now=100.0)
    entry = bt.record_failure(7, "fetched_channel", now=160.0)
    assert entry == {
        "count": 2,
        "first_failure": 100.0,
        "last_attempt": 160.0,
        "methods_tried": ["cached_channel", "fetched_channel"],
    }


async def test_existing_message_is_ok_and_forgets_earlier_failures(simcord_env, simcord_bot):
    channel = simcord_env.create_guild().create_text_channel("polls")
    alice = simcord_env.guild.add_member(simcord_env.create_user("alice"))
    message = await alice.send(channel, "poll lives here")
    poll_id = await add_poll(simcord_bot, channel.id, message.id)
    bt.record_failure(poll_id, "cached_channel")

    result = await bt.verify_poll_messages(simcord_bot, simcord_bot.db)
    assert result == {"checked": 1, "ok": 1, "missing": 0, "deleted": 0}
    assert poll_id not in bt.message_fetch_failures


async def test_poll_whose_message_is_gone_is_deleted_after_the_retry_budget(simcord_env, simcord_bot):
    channel = simcord_env.create_guild().create_text_channel("polls")
    alice = simcord_env.guild.add_member(simcord_env.create_user("alice"))
    message = await alice.send(channel, "soon gone")
    poll_id = await add_poll(simcord_bot, channel.id, message.id)
    await alice.delete(message)

    for attempt in range(1, bt.RETRY_BUDGET):
        result = await bt.verify_poll_messages(simcord_bot, simcord_bot.db)
        assert result["missing"] == 1 and result["deleted"] == 0
        assert bt.message_fetch_failures[poll_id]["count"] == attempt
    assert bt.message_fetch_failures[poll_id]["methods_tried"] == list(bt.FETCH_METHODS[: bt.RETRY_BUDGET - 1])

    result = await bt.verify_poll_messages(simcord_bot, simcord_bot.db)
    assert result["deleted"] == 1
    assert await poll_ids(simcord_bot) == []
    assert poll_id not in bt.message_fetch_failures


async def test_cleanup_drops_failures_of_polls_that_no_longer_exist(simcord_env, simcord_bot):
    channel = simcord_env.create_guild().create_text_channel("polls")
    alice = simcord_env.guild.add_member(simcord_env.create_user("alice"))
    message = await alice.send(channel, "still here")
    kept = await add_poll(simcord_bot, channel.id, message.id)
    bt.record_failure(kept, "cached_channel")
    for ghost in (9001, 9002, 9003):
        bt.record_failure(ghost, "cached_channel")

    result = await bt.cleanup_polls_with_deleted_messages(simcord_bot, simcord_bot.db)
    assert result == {"orphans_dropped": 3, "deleted": 0}
    assert list(bt.message_fetch_failures) == [kept]
    assert await poll_ids(simcord_bot) == [kept]


async def test_missing_channel_counts_as_missing_and_warnings_are_throttled(simcord_env, simcord_bot, caplog):
    simcord_env.create_guild()
    await add_poll(simcord_bot, channel_id=123456789, message_id=1)
    before = bt.startup_warning_counts["channel_not_found"]
    for _ in range(bt.WARNINGS_LOGGED_PER_KIND + 3):
        bt.message_fetch_failures.clear()
        await bt.verify_poll_messages(simcord_bot, simcord_bot.db)
    assert bt.startup_warning_counts["channel_not_found"] - before == bt.WARNINGS_LOGGED_PER_KIND + 3
    logged = [r for r in caplog.records if "channel 123456789 not found" in r.getMessage()]
    assert len(logged) <= bt.WARNINGS_LOGGED_PER_KIND


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({"MAX_FAILURE_ENTRIES": "7", "FAILURE_CLEANUP_AGE": "3"}, [7, 3]), ({"MAX_FAILURE_ENTRIES": "x"}, [1000, 60])],
)
def test_failure_tracking_is_bounded_by_the_settings_before_any_bot_exists(tmp_path, environment, expected):
    """Importing the module sizes it from MAX_FAILURE_ENTRIES / FAILURE_CLEANUP_AGE; an invalid
    value leaves the defaults (the launcher reports it), and the import never fails."""
    code = (
        "import json\nfrom bot.poll_checks import message_fetch_failures as f\n"
        "print(json.dumps([f.max_size, f.max_age_minutes]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert json.loads(out) == expected
