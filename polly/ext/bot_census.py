"""What only the Discord side can read for the bot census: the loaded cogs and extensions,
discord.py's view store, the bot's extra listeners, discord.py's own HTTP session.

Read from discord.py's containers (O(views + cogs)); a container a future discord.py renames is
left out of the census rather than failing the tick.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from discord.ext import commands

from polly.bot_census import ViewKind, kept


def _name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


class DiscordBotSource:
    """`polly.bot_watch.BotSource` for a discord.py bot."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    def loaded(self) -> Iterable[tuple[str, str, object]]:
        for cog in list(self.bot.cogs.values()):
            yield "cog", _name(cog), cog
        for name, module in list(self.bot.extensions.items()):
            yield "extension", name, module

    def views(self) -> tuple[tuple[ViewKind, ...], int, int]:
        store: Any = getattr(getattr(self.bot, "_connection", None), "_view_store", None)
        if store is None:
            return (), 0, 0
        views: dict[int, Any] = {}
        for items in list(getattr(store, "_views", {}).values()):
            for item in list(items.values()):
                view = getattr(item, "view", None)
                if view is not None:
                    views[id(view)] = view
        for view in [*getattr(store, "_synced_message_views", {}).values(), *getattr(store, "_modals", {}).values()]:
            views[id(view)] = view
        by_class: dict[str, list[int]] = {}
        for view in views.values():
            row = by_class.setdefault(_name(view), [0, 0, 0, 0])
            row[0] += 1
            row[1] += getattr(view, "timeout", None) is None
            persistent = getattr(view, "is_persistent", None)
            row[2] += bool(persistent()) if callable(persistent) else 0
            row[3] += getattr(view, "_cache_key", None) is not None
        counts = {name: row[0] for name, row in by_class.items()}
        kinds = tuple(
            ViewKind(name, count, *by_class[name][1:]) if name in by_class else ViewKind(name, count, 0, 0, 0)
            for name, count in kept(counts)
        )
        return kinds, len(views), len(getattr(store, "_dynamic_items", {}))

    def listeners(self) -> tuple[tuple[str, int], ...]:
        events = getattr(self.bot, "extra_events", {})
        return tuple(sorted((event, len(funcs)) for event, funcs in events.items() if funcs))

    def http_sessions(self) -> Collection[object]:
        session = getattr(getattr(self.bot, "http", None), "_HTTPClient__session", None)
        return [session] if session is not None else []

    def named_roots(self) -> Mapping[str, object]:
        return {"bot": self.bot}

    def is_cog_type(self, kind: type) -> bool:
        return isinstance(kind, commands.CogMeta)
