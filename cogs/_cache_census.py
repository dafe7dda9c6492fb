"""Counting discord.py's caches: `len()` of its own containers, O(guilds), no copies.

discord.py's public properties (`bot.users`, `guild.members`) build a new list on every call;
the census reads the containers behind them instead. A container a future discord.py renames is
left out of the census rather than failing the tick.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import discord

from polly.caches import CacheCensus

# Intents that decide what discord.py caches.
CACHE_INTENTS = (
    "guilds",
    "members",
    "presences",
    "voice_states",
    "guild_messages",
    "dm_messages",
    "emojis_and_stickers",
)


def _size(container: Any) -> int | None:
    return None if container is None else len(container)


def _per_guild(guilds: Iterable[Any], attribute: str) -> int | None:
    # map/attrgetter run in C: about 0.5 ms per attribute at 10,000 guilds, a Python loop 2 ms
    try:
        return sum(map(len, map(operator.attrgetter(attribute), guilds)))
    except (AttributeError, TypeError):
        return None


def take_census(client: discord.Client) -> CacheCensus:
    state = client._connection
    guilds = list(getattr(state, "_guilds", {}).values())
    messages = getattr(state, "_messages", None)
    counts = {
        "guilds": len(guilds),
        "channels": _per_guild(guilds, "_channels"),
        "threads": _per_guild(guilds, "_threads"),
        "roles": _per_guild(guilds, "_roles"),
        "emojis": _size(getattr(state, "_emojis", None)),
        "stickers": _size(getattr(state, "_stickers", None)),
        "members": _per_guild(guilds, "_members"),
        "users": _size(getattr(state, "_users", None)),
        "messages": 0 if messages is None else len(messages),
        "voice_states": _per_guild(guilds, "_voice_states"),
        "private_channels": _size(getattr(state, "_private_channels", None)),
    }
    flags = state.member_cache_flags
    member_cache = {(False, False): "none", (True, False): "voice", (False, True): "joined", (True, True): "all"}[
        (bool(flags.voice), bool(flags.joined))
    ]
    intents = state._intents
    return CacheCensus(
        counts=tuple((name, value) for name, value in counts.items() if value is not None),
        message_limit=None if messages is None else messages.maxlen,
        member_cache=member_cache,
        intents=tuple(name for name in CACHE_INTENTS if getattr(intents, name, False)),
        chunk_at_startup=bool(getattr(state, "_chunk_guilds", False)),
    )
