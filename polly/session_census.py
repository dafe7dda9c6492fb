"""Live aiohttp client sessions and connectors, found in a checkpoint's heap walk.

aiohttp keeps no registry of its sessions, so they are found where objgraph would find them: among
the heap's objects, by type. The checkpoint already counts the heap by type off the event loop
(`polly.heap_types`); only when that count holds a session type are its instances picked out (in
the same worker thread, in pieces). aiohttp is never imported here: a bot without it pays nothing.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Collection

from polly.bot_census import SessionCensus
from polly.heap_types import pick, type_name
from polly.off_loop import off_loop

SESSION_TYPES = ("aiohttp.client.ClientSession",)


def _is_kind(kind: type, names: tuple[str, ...]) -> bool:
    return any(type_name(base) in names for base in getattr(kind, "__mro__", ()))


def _is_connector(kind: type) -> bool:
    return _is_kind(kind, ("aiohttp.connector.BaseConnector",))


async def count_sessions(
    objects: list[object], by_type: Counter[type], discord_sessions: Collection[object] = ()
) -> SessionCensus | None:
    """Sessions and connectors among `objects` (the heap's list the counts were taken from); None
    when aiohttp is not loaded. `discord_sessions`: discord.py's own, counted apart."""
    if "aiohttp" not in sys.modules:
        return None
    sessions = {kind for kind in by_type if _is_kind(kind, SESSION_TYPES)}
    connectors = {kind for kind in by_type if _is_connector(kind)}
    found: list[object] = await off_loop(pick, objects, sessions | connectors) if sessions or connectors else []
    own = {id(s) for s in discord_sessions}
    unclosed = [s for s in found if type(s) in sessions and not getattr(s, "closed", True)]
    return SessionCensus(
        total=sum(type(s) in sessions for s in found),
        unclosed=len(unclosed),
        discord=sum(id(s) in own for s in unclosed),
        connectors_open=sum(type(c) in connectors and not getattr(c, "closed", True) for c in found),
    )
