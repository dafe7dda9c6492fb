"""asyncio tasks by coroutine: how many of each kind, the oldest, and where it waits.

O(tasks), not O(heap): `asyncio.all_tasks()` is the loop's own weak set. asyncio does not record
when a task was created, so a task's age is counted from the first census that saw it (a weak
table: a finished task leaves it by itself). Where a task waits is its coroutine chain's frames,
by qualified name, file and line only: never locals or reprs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from collections.abc import Iterable
from datetime import datetime
from types import CodeType, FrameType
from typing import Any

from polly.bot_census import KINDS_KEPT, OTHER, TaskKind, kept

WAIT_FRAMES = 5  # frames shown for where a task waits (innermost kept)
LOOP_CORO = "Loop._loop"  # discord.ext.tasks' runner: named after the loop's own coroutine instead

# Code under these folders is a library's, not the bot's: where a task waits skips it.
_LIBRARY_ROOTS = tuple({os.path.join(p, "lib", "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})


def coroutine_name(task: asyncio.Task[Any]) -> str:
    """`LeakyCog.on_message.<locals>.wait_forever`; a tasks.loop's runner is named by the loop's
    coroutine (`tasks.loop MemoryCog.monitor_loop`), so each loop counts apart."""
    coro = task.get_coro()
    code: CodeType | None = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    name = getattr(code, "co_qualname", None) or getattr(coro, "__qualname__", None) or type(coro).__qualname__
    if name == LOOP_CORO:
        frame: FrameType | None = getattr(coro, "cr_frame", None)
        loop = frame.f_locals.get("self") if frame is not None else None
        inner = getattr(getattr(loop, "coro", None), "__qualname__", None)
        if inner:
            return f"tasks.loop {inner}"
    return str(name)


def is_library_file(path: str) -> bool:
    return (
        path.startswith((*_LIBRARY_ROOTS, "<"))
        or f"{os.sep}site-packages{os.sep}" in path
        or f"{os.sep}dist-packages{os.sep}" in path
    )


def where_it_waits(task: asyncio.Task[Any], limit: int = WAIT_FRAMES) -> tuple[str, ...]:
    """The task's own frames, outermost first, the bot's code only (all frames if none is the
    bot's): `LeakyCog.wait_forever (cogs/leaky.py:14)`."""
    frames: list[FrameType] = []
    coro: Any = task.get_coro()
    while coro is not None and len(frames) < 50:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    own = [f for f in frames if not is_library_file(f.f_code.co_filename)] or frames
    return tuple(_frame_text(f) for f in own[-limit:])


def _frame_text(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    try:
        shown = os.path.relpath(path)
    except ValueError:
        shown = path
    if shown.startswith(".."):
        shown = os.path.join(*path.split(os.sep)[-2:])
    return f"{getattr(code, 'co_qualname', code.co_name)} ({shown}:{frame.f_lineno})"


class TaskWatch:
    """Counts the loop's tasks by kind; remembers when each was first seen (weakly)."""

    def __init__(self) -> None:
        self._first_seen: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = weakref.WeakKeyDictionary()

    def census(
        self, now: datetime, tasks: Iterable[asyncio.Task[Any]] | None = None, *, limit: int = KINDS_KEPT
    ) -> tuple[tuple[TaskKind, ...], int, tuple[tuple[str, int], ...]]:
        """(kinds, total, running loops) now. The loop's tasks unless `tasks` is given. The
        `limit` largest kinds by name; where it waits for the oldest of each."""
        stamp = now.timestamp()
        live = list(asyncio.all_tasks() if tasks is None else tasks)
        # The census does not count the command asking for it (a loop's own tick it does count).
        myself = asyncio.current_task() if tasks is None else None
        if myself is not None and coroutine_name(myself).startswith("tasks.loop "):
            myself = None
        counts: dict[str, int] = {}
        oldest: dict[str, tuple[float, asyncio.Task[Any]]] = {}
        seen = self._first_seen
        for task in live:
            if task.done() or task is myself:
                continue
            name = coroutine_name(task)
            counts[name] = counts.get(name, 0) + 1
            first = seen.setdefault(task, stamp)
            known = oldest.get(name)
            if known is None or first < known[0]:
                oldest[name] = (first, task)
        kinds = []
        for name, count in kept(counts, limit):
            if name == OTHER:
                kinds.append(TaskKind(name, count, 0.0))
                continue
            first, task = oldest[name]
            kinds.append(TaskKind(name, count, max(0.0, stamp - first), where_it_waits(task)))
        loops = tuple((n[len("tasks.loop ") :], c) for n, c in sorted(counts.items()) if n.startswith("tasks.loop "))
        return tuple(kinds), sum(counts.values()), loops
