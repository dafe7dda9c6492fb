"""What the bot keeps alive, as plain values: asyncio tasks by coroutine, discord.py views, HTTP
sessions, cogs and extensions that outlived their unload, child processes.

The numbers are read elsewhere (`polly/task_census.py`, `polly/survivors.py`,
`polly/child_processes.py`, `polly/session_census.py` in the core; views, listeners and the bot's
cogs on the Discord side, `polly/ext/bot_census.py`) and meet here, in a record a sample carries,
a checkpoint stores and two checkpoints compare.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from polly.heap_types import TypeGrowth
from polly.records import record

KINDS_KEPT = 15  # task kinds and view classes kept by name (a bounded label set); the rest summed
OTHER = "(other kinds)"


@record
class TaskKind:
    """Live tasks running one coroutine; `oldest_s`: how long the oldest has been seen alive (at
    least; Polly sees a task first at a census); `waits`: where that oldest one waits, innermost
    last (the bot's own frames, `qualname (file:line)`, names only)."""

    name: str
    count: int
    oldest_s: float
    waits: tuple[str, ...] = ()


@record
class ViewKind:
    """Views (or modals) of one class in discord.py's view store."""

    name: str
    count: int
    no_timeout: int  # live until the bot stops, unless the bot stops them
    persistent: int  # timeout None and every item with a custom_id (bot.add_view)
    per_message: int  # tied to one message


@record
class SessionCensus:
    """Live `aiohttp.ClientSession` objects (counted at checkpoints: a walk of the heap)."""

    total: int
    unclosed: int
    discord: int  # discord.py's own (its HTTP client's): one per client, expected
    connectors_open: int

    @property
    def bot_unclosed(self) -> int:
        """Unclosed sessions that are not discord.py's: the ones a leak is made of."""
        return max(0, self.unclosed - self.discord)


@record
class Survivor:
    """A cog or extension module still alive after its unload and a full garbage collection."""

    name: str
    kind: str  # "cog" or "extension"
    count: int  # instances of that name alive (one per leaked reload)
    unloaded_at: datetime
    chain: tuple[str, ...] = ()  # who holds it, root first (empty: not searched, or not found)


@record
class ChildProcess:
    pid: int
    name: str
    rss: int


@record
class BotCensus:
    """One census. `children` is None where the process's children cannot be read."""

    tasks: tuple[TaskKind, ...]
    task_total: int
    views: tuple[ViewKind, ...]
    view_total: int
    dynamic_items: int
    listeners: tuple[tuple[str, int], ...]  # extra listeners per event (bot.extra_events)
    loops: tuple[tuple[str, int], ...]  # running tasks.loop()s by coroutine
    survivors: tuple[Survivor, ...]
    children: tuple[ChildProcess, ...] | None
    sessions: SessionCensus | None = None  # counted at checkpoints and on demand only
    sessions_at: datetime | None = None  # when they were counted

    @property
    def no_timeout_views(self) -> int:
        return sum(v.no_timeout for v in self.views)

    @property
    def survivor_total(self) -> int:
        return sum(s.count for s in self.survivors)

    @property
    def children_rss(self) -> int | None:
        return None if self.children is None else sum(c.rss for c in self.children)

    def counts(self) -> dict[str, int]:
        """Every counted kind by a name people read (`task Leaky.forever`, `view Poll`, `sessions
        unclosed`, `survivor cogs.x.Cog`, `child processes`): what checkpoints compare."""
        out = {f"task {t.name}": t.count for t in self.tasks}
        out |= {f"view {v.name}": v.count for v in self.views}
        out |= {f"survivor {s.name}": s.count for s in self.survivors}
        if self.sessions is not None:
            out["sessions unclosed"] = self.sessions.bot_unclosed
        if self.children is not None:
            out["child processes"] = len(self.children)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": [[t.name, t.count, round(t.oldest_s, 1), list(t.waits)] for t in self.tasks],
            "task_total": self.task_total,
            "views": [[v.name, v.count, v.no_timeout, v.persistent, v.per_message] for v in self.views],
            "view_total": self.view_total,
            "dynamic_items": self.dynamic_items,
            "listeners": dict(self.listeners),
            "loops": dict(self.loops),
            "survivors": [
                {"name": s.name, "kind": s.kind, "count": s.count, "unloaded_at": s.unloaded_at.isoformat()}
                | ({"chain": list(s.chain)} if s.chain else {})
                for s in self.survivors
            ],
            "children": None if self.children is None else [[c.pid, c.name, c.rss] for c in self.children],
            "sessions": None
            if self.sessions is None
            else {
                "total": self.sessions.total,
                "unclosed": self.sessions.unclosed,
                "discord": self.sessions.discord,
                "connectors_open": self.sessions.connectors_open,
            },
            "sessions_at": None if self.sessions_at is None else self.sessions_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BotCensus:
        children = data.get("children")
        sessions = data.get("sessions")
        return cls(
            tasks=tuple(TaskKind(n, c, o, tuple(w)) for n, c, o, w in data.get("tasks", [])),
            task_total=data.get("task_total", 0),
            views=tuple(ViewKind(*row) for row in data.get("views", [])),
            view_total=data.get("view_total", 0),
            dynamic_items=data.get("dynamic_items", 0),
            listeners=tuple(data.get("listeners", {}).items()),
            loops=tuple(data.get("loops", {}).items()),
            survivors=tuple(
                Survivor(
                    s["name"],
                    s["kind"],
                    s["count"],
                    datetime.fromisoformat(s["unloaded_at"]),
                    tuple(s.get("chain", ())),
                )
                for s in data.get("survivors", [])
            ),
            children=None if children is None else tuple(ChildProcess(*row) for row in children),
            sessions=None if sessions is None else SessionCensus(**sessions),
            sessions_at=datetime.fromisoformat(data["sessions_at"]) if data.get("sessions_at") else None,
        )


def kept(counts: dict[str, int], limit: int = KINDS_KEPT) -> list[tuple[str, int]]:
    """The `limit` largest, the rest summed under OTHER (so label sets and stored rows stay bounded)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    rest = sum(n for _, n in ranked[limit:])
    return ranked[:limit] + ([(OTHER, rest)] if rest else [])


def census_growth(before: BotCensus | None, after: BotCensus | None, top: int = 10) -> tuple[TypeGrowth, ...]:
    """The kinds that grew between two censuses, most first (a kind new in `after` from 0)."""
    if before is None or after is None:
        return ()
    old, new = before.counts(), after.counts()
    if before.sessions is None:  # not counted then: no growth known
        new.pop("sessions unclosed", None)
    grown = [TypeGrowth(name, old.get(name, 0), n) for name, n in new.items() if n > old.get(name, 0)]
    return tuple(sorted(grown, key=lambda g: -g.change)[:top])
