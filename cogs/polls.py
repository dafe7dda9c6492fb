"""Polly's own upkeep: the scheduled check that every active poll's message still exists, and the
cleanup of polls whose messages are gone (once at start-up, then after every check).

Both run under `memory_profile`, so `/mem profile` and `/metrics` show what each run costs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

from bot.poll_checks import cleanup_polls_with_deleted_messages, verify_poll_messages
from polly.ext.loops import stop_loop

if TYPE_CHECKING:
    from bot.app import PollyBot

log = logging.getLogger(__name__)


class PollUpkeepCog(commands.Cog):
    """Checks poll messages every POLL_CHECK_INTERVAL_MINUTES."""

    def __init__(self, bot: PollyBot) -> None:
        self.bot = bot
        self.checking = False  # an iteration is running (and may be in a database call)
        self.check_loop.change_interval(minutes=bot.settings.poll_check_interval_minutes)

    async def cog_load(self) -> None:
        await self._cleanup("start-up")
        self.check_loop.start()

    async def cog_unload(self) -> None:
        await stop_loop(self.check_loop, busy=self.checking)

    async def _cleanup(self, when: str) -> None:
        try:
            result = await cleanup_polls_with_deleted_messages(self.bot, self.bot.db)
        except Exception:  # the bot runs on; the next check tries again
            log.exception("Poll cleanup at %s failed", when)
            return
        if any(result.values()):
            log.info("Poll cleanup at %s: %s", when, result)

    @tasks.loop(minutes=30)
    async def check_loop(self) -> None:
        self.checking = True
        try:
            result = await verify_poll_messages(self.bot, self.bot.db)
            if result["missing"]:
                await self._cleanup("check")
        except Exception:  # one bad check must not end the loop
            log.exception("Checking poll messages failed")
        finally:
            self.checking = False

    @check_loop.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()


async def setup(bot: PollyBot) -> None:
    await bot.add_cog(PollUpkeepCog(bot))
