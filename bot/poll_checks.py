"""Polly's poll-message checks, with failure tracking that cannot grow without bound.

The original kept `message_fetch_failures` and the warning counters as plain global dicts that
only ever grew, and kept failures for polls that no longer existed. Here both are tracked,
bounded structures, and failures of vanished polls are dropped.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

import discord
from sqlalchemy import delete, select

from bot.models import PollStatus, polls
from polly.config import Settings, environment_setting
from polly.decorators import memory_cleanup_decorator, memory_profile
from polly.enhanced_database import Database
from polly.gc_tools import cleanup_background_tasks_memory
from polly.registry import registry

log = logging.getLogger(__name__)

# Fetch attempts, each with more effort, before a poll whose message is gone is deleted.
FETCH_METHODS = ("cached_channel", "fetched_channel", "fetched_channel_retry")
RETRY_BUDGET = len(FETCH_METHODS)
# How many warnings of one kind are logged before they are only counted.
WARNINGS_LOGGED_PER_KIND = 5
WARNING_KINDS = (
    "message_not_found",
    "permission_denied",
    "channel_not_found",
    "rate_limited",
    "message_fix_failed",
)

# Sized from MAX_FAILURE_ENTRIES / FAILURE_CLEANUP_AGE at import, so the bound holds before (and
# without) a bot; `configure()` re-applies the settings a bot was built with.
message_fetch_failures = registry.bounded_dict(
    "message_fetch_failures",
    max_size=environment_setting("max_failure_entries"),
    max_age_minutes=environment_setting("failure_cleanup_age"),
    timestamp_key="last_attempt",
    description="poll id -> failed message fetches",
)
startup_warning_counts = registry.bounded_dict(
    "startup_warning_counts", max_size=64, description="warnings per kind, throttling log noise"
)
for _kind in WARNING_KINDS:
    startup_warning_counts[_kind] = 0


def configure(settings: Settings) -> None:
    """Apply MAX_FAILURE_ENTRIES and FAILURE_CLEANUP_AGE (known only once settings are loaded)."""
    registry.resize("message_fetch_failures", settings.max_failure_entries, settings.failure_cleanup_age)


_offline_poll_ids = itertools.count(10_000_000)  # far above any real poll id


def leak_failures(count: int) -> str:
    """The offline console's `:leak N`: N message-fetch failures of polls that do not exist."""
    for _ in range(count):
        record_failure(next(_offline_poll_ids), "cached_channel")
    return (
        f"Recorded {count:,} message-fetch failures; message_fetch_failures holds "
        f"{len(message_fetch_failures):,} of at most {message_fetch_failures.max_size:,}"
    )


def warn_throttled(kind: str, message: str, *args: Any) -> None:
    """Log the first few warnings of a kind; count all of them."""
    count = startup_warning_counts.get(kind, 0) + 1
    startup_warning_counts[kind] = count
    if count <= WARNINGS_LOGGED_PER_KIND:
        log.warning(message, *args)
    elif count == WARNINGS_LOGGED_PER_KIND + 1:
        log.warning("Further %s warnings are counted, not logged", kind)


def record_failure(poll_id: int, method: str, now: float | None = None) -> dict[str, Any]:
    """Remember one failed fetch of a poll's message; returns the poll's failure entry."""
    # discord.py's clock, so failure ages and the monitor's cleanup agree (also in SimCord).
    now = discord.utils.utcnow().timestamp() if now is None else now
    entry = message_fetch_failures.get(poll_id)
    if entry is None:
        entry = {"count": 0, "first_failure": now, "last_attempt": now, "methods_tried": []}
    entry["count"] += 1
    entry["last_attempt"] = now
    if method not in entry["methods_tried"]:
        entry["methods_tried"].append(method)
    message_fetch_failures[poll_id] = entry  # a write makes it the newest entry
    return entry


def forget_failure(poll_id: int) -> None:
    message_fetch_failures.pop(poll_id, None)


if TYPE_CHECKING:  # a Protocol class costs ~4 KiB at import; checkers are its only readers
    from typing import Protocol

    class PollMessage(Protocol):
        """What the check reads of a poll row."""

        id: int
        channel_id: int
        message_id: int


async def _fetch_message(bot: discord.Client, poll: PollMessage, method: str) -> discord.Message:
    """Fetch a poll's message with the effort `method` names."""
    if method == "cached_channel":
        channel = bot.get_channel(poll.channel_id)
        if channel is None:
            raise LookupError("channel not in cache")
    else:
        channel = await bot.fetch_channel(poll.channel_id)
    if not isinstance(channel, discord.abc.Messageable):
        raise LookupError("channel cannot hold messages")
    return await channel.fetch_message(poll.message_id)


async def check_poll_message(bot: discord.Client, poll: PollMessage) -> bool | None:
    """True: the message exists. False: it is gone. None: could not tell this time."""
    entry = message_fetch_failures.get(poll.id)
    attempt = entry["count"] if entry else 0
    method = FETCH_METHODS[min(attempt, RETRY_BUDGET - 1)]
    try:
        await _fetch_message(bot, poll, method)
    except discord.NotFound:
        warn_throttled("message_not_found", "Poll %d: message %s not found (%s)", poll.id, poll.message_id, method)
        record_failure(poll.id, method)
        return False
    except discord.Forbidden:
        warn_throttled("permission_denied", "Poll %d: no permission to read channel %d", poll.id, poll.channel_id)
        return None
    except LookupError:
        warn_throttled("channel_not_found", "Poll %d: channel %d not found", poll.id, poll.channel_id)
        record_failure(poll.id, method)
        return False
    except discord.HTTPException as exc:
        kind = "rate_limited" if exc.status == 429 else "message_fix_failed"
        warn_throttled(kind, "Poll %d: fetching its message failed (%s)", poll.id, exc.status)
        return None
    forget_failure(poll.id)
    return True


def clean_tracked_structures() -> None:
    """Clean every tracked structure by its limits on discord.py's clock (the failures' clock)."""
    cleanup_background_tasks_memory(gc_generation=None, now=discord.utils.utcnow().timestamp())


@memory_profile
@memory_cleanup_decorator(clean_tracked_structures)  # the plan's decorator, after each check
async def verify_poll_messages(bot: discord.Client, db: Database) -> dict[str, int]:
    """Check every active poll's message; delete polls whose message stayed gone for the budget."""
    async with db.transaction() as conn:
        active = list(
            await conn.execute(
                select(polls.c.id, polls.c.channel_id, polls.c.message_id).where(
                    polls.c.status == PollStatus.ACTIVE, polls.c.message_id.is_not(None)
                )
            )
        )
    result = {"checked": len(active), "ok": 0, "missing": 0, "deleted": 0}
    gone: list[int] = []
    for poll in active:
        found = await check_poll_message(bot, poll)
        if found:
            result["ok"] += 1
        elif found is False:
            result["missing"] += 1
            entry = message_fetch_failures.get(poll.id)
            if entry and entry["count"] >= RETRY_BUDGET:
                gone.append(poll.id)
    if gone:
        result["deleted"] = await _delete_polls(db, gone)
    return result


async def _delete_polls(db: Database, poll_ids: list[int]) -> int:
    async with db.transaction() as conn:
        deleted = await conn.execute(delete(polls).where(polls.c.id.in_(poll_ids)))
    for poll_id in poll_ids:
        forget_failure(poll_id)
    log.info("Deleted %d poll(s) whose messages are gone", len(poll_ids))
    return deleted.rowcount or 0


@memory_profile
async def cleanup_polls_with_deleted_messages(bot: discord.Client, db: Database) -> dict[str, int]:
    """Clean the tracked structures, drop failures of polls that no longer exist, then delete
    the polls whose messages stayed missing for the whole retry budget."""
    clean_tracked_structures()
    async with db.transaction() as conn:
        existing = set(await conn.scalars(select(polls.c.id).where(polls.c.id.in_(list(message_fetch_failures)))))
    orphans = [poll_id for poll_id in list(message_fetch_failures) if poll_id not in existing]
    for poll_id in orphans:
        forget_failure(poll_id)
    exhausted = [pid for pid, entry in list(message_fetch_failures.items()) if entry["count"] >= RETRY_BUDGET]
    deleted = await _delete_polls(db, exhausted) if exhausted else 0
    return {"orphans_dropped": len(orphans), "deleted": deleted}
