"""Stopping a `tasks.loop` without cutting a database call in half."""

from __future__ import annotations

import asyncio
import logging

from discord.ext import tasks

log = logging.getLogger(__name__)

STOP_WAIT_S = 10.0


async def stop_loop(loop: tasks.Loop, *, busy: bool, wait_s: float = STOP_WAIT_S) -> None:
    """Cancel `loop`, but let an iteration that is running finish first (up to `wait_s`).

    Cancelling an iteration in the middle of a database call leaves SQLAlchemy closing the aiosqlite
    connection after the engine is gone, which never completes: the process then hangs at exit.
    """
    task = loop.get_task()
    if busy and task is not None and not task.done():
        loop.stop()  # ends after the running iteration instead of sleeping again
        done, _ = await asyncio.wait({task}, timeout=wait_s)
        if done:
            return
        log.warning("A background loop did not finish its iteration within %.0f s; cancelling it", wait_s)
    loop.cancel()
