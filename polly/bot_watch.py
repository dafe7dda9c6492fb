"""The bot census, taken: cheap parts at every tick, the heap's parts at checkpoints and on demand.

Every tick (O(tasks + views + cogs + children), no heap walk): tasks by coroutine, views,
listeners, running loops, survivors, child processes. At a checkpoint (whose heap walk runs off
the event loop anyway) and on demand: HTTP sessions, and who holds each survivor (the chain
search of /mem inspect, time-boxed). The Discord side hands in what only it can read through
`BotSource`; the core never touches a Discord object by name.
"""

from __future__ import annotations

import gc
import sys
import time
import types
import weakref
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from polly.bot_census import BotCensus, SessionCensus, Survivor, ViewKind
from polly.child_processes import child_processes
from polly.survivors import SurvivorWatch
from polly.task_census import TaskWatch

CHAIN_BUDGET_S = 2.0  # for all survivors' chains together
CHAINS_SEARCHED = 3  # survivors whose holder is searched (the largest first)


if TYPE_CHECKING:  # a Protocol class costs ~4 KiB at import; checkers are its only readers
    from typing import Protocol

    class BotSource(Protocol):
        """What the Discord side reads from the bot (polly/ext/bot_census.py)."""

        def loaded(self) -> Iterable[tuple[str, str, object]]:
            """(kind, name, object) for each cog ("cog") and extension module ("extension") loaded."""
            ...

        def views(self) -> tuple[tuple[ViewKind, ...], int, int]:
            """(view kinds, views in all, dynamic item classes)."""
            ...

        def listeners(self) -> tuple[tuple[str, int], ...]: ...

        def http_sessions(self) -> Collection[object]:
            """discord.py's own client sessions (counted apart)."""
            ...

        def named_roots(self) -> Mapping[str, object]: ...

        def is_cog_type(self, kind: type) -> bool:
            """A class of the bot's cogs (instances of it that are not loaded may be survivors)."""
            ...


class BotWatch:
    def __init__(self, source: BotSource) -> None:
        self.source = source
        self.tasks = TaskWatch()
        self.survivor_watch = SurvivorWatch()
        self.sessions: SessionCensus | None = None  # the last counted (checkpoints, on demand)
        self.sessions_at: datetime | None = None
        self.chains: dict[str, tuple[str, ...]] = {}  # survivor name -> its holder, last searched
        self._stale_at_start: weakref.WeakSet[type] | None = None

    def read(self, now: datetime) -> BotCensus:
        """The census every tick: sessions and chains as last counted."""
        self.survivor_watch.observe(self.source.loaded(), now)
        kinds, total, loops = self.tasks.census(now)
        views, view_total, dynamic = self.source.views()
        survivors = tuple(
            Survivor(f.name, f.kind, len(f.objects), f.unloaded_at, self.chains.get(f.name, ()))
            for f in self.survivor_watch.survivors(self.chains)
        )
        return BotCensus(
            tasks=kinds,
            task_total=total,
            views=views,
            view_total=view_total,
            dynamic_items=dynamic,
            listeners=self.source.listeners(),
            loops=loops,
            survivors=survivors,
            children=child_processes(),
            sessions=self.sessions,
            sessions_at=self.sessions_at,
        )

    async def full(self, now: datetime) -> BotCensus:
        """The census with the heap's parts counted now (a walk of its own, in pieces)."""
        from polly.heap_types import count_types_in_pieces

        self.survivor_watch.walk_starts()
        objects = gc.get_objects()
        try:
            await self.count_heap(now, objects, await count_types_in_pieces(objects))
        finally:
            del objects
        await self.search_chains()
        return self.read(now)

    async def count_heap(self, now: datetime, objects: list[object], by_type: Counter[type]) -> None:
        """Sessions, and unloaded cogs no census saw, from a walk's `objects` (a checkpoint's).
        The caller drops `objects` before `search_chains()`: while that list is alive, so is
        everything in it, and a collection in between proves nothing about survivors."""
        from polly.session_census import count_sessions

        self.survivor_watch.observe(self.source.loaded(), now)  # the names of what is loaded now
        self.sessions = await count_sessions(objects, by_type, self.source.http_sessions())
        self.sessions_at = now
        await self._adopt_unseen_cogs(objects, by_type, now)

    async def _adopt_unseen_cogs(self, objects: list[object], by_type: Counter[type], now: datetime) -> None:
        """Cog instances in the heap that are not loaded, whose class comes from an earlier version
        of one of this bot's extensions: reloads between two ticks leave some no census saw loaded.
        Picked out in the worker thread, like the sessions."""
        from polly.heap_types import pick
        from polly.off_loop import off_loop

        kinds = {kind for kind in by_type if self.source.is_cog_type(kind)}
        if not kinds:
            return
        loaded = {id(obj) for _, _, obj in self.source.loaded()}
        if self._stale_at_start is None:
            # Classes of replaced modules already in the heap at the first walk are not this run's
            # reloads (an earlier bot's in the same process): never judged.
            self._stale_at_start = weakref.WeakSet(k for k in kinds if _of_a_replaced_module(k))
        names, stale = self.survivor_watch.names, self._stale_at_start
        kinds = {k for k in kinds if k not in stale and k.__module__ in names and _of_a_replaced_module(k)}
        if not kinds:
            return
        for cog in await off_loop(pick, objects, kinds):
            if id(cog) not in loaded:
                kind = type(cog)
                self.survivor_watch.adopt("cog", f"{kind.__module__}.{kind.__qualname__}", cog, now)

    async def search_chains(self) -> None:
        """Who holds each unloaded cog still alive: a time-boxed search from the bot and the
        modules. A holder found proves it a survivor at once; one not found stays to be judged
        after the next full collection from now (the walk and this search held it meanwhile)."""
        deadline = time.perf_counter() + CHAIN_BUDGET_S
        found = self.survivor_watch.survivors(pending=True)
        chains = {}
        if found:  # most bots never have one: the search's code loads with the first
            from polly.heap_refs import find_chain
        for survivor in found[:CHAINS_SEARCHED]:
            chain = await find_chain(
                survivor.objects[0],
                named_roots=self.source.named_roots(),
                deadline=deadline,
                ignore=[survivor.objects, survivor, found],
            )
            if chain.found:
                chains[survivor.name] = chain.parts
        del found
        self.chains = chains
        self.survivor_watch.judge_from_now()


def _of_a_replaced_module(kind: type) -> bool:
    """`kind` was defined in a version of its module that is no longer the one imported under that
    name (a reload replaced it, an unload removed it). A cog's class is defined in its extension
    module, so its module's name is the extension's: this bot's current classes are not judged."""
    functions = (v for v in vars(kind).values() if isinstance(v, types.FunctionType))
    defined_in = next((f.__globals__ for f in functions), None)
    current = sys.modules.get(kind.__module__)
    return defined_in is not None and (current is None or vars(current) is not defined_in)
