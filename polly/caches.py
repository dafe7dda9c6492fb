"""discord.py's caches as plain numbers: what the Discord side counts each tick, handed to the core.

The core never reads Discord objects (docs/ARCHITECTURE.md); `polly/ext/cache_census.py` does, with
`len()` of discord.py's own containers, and builds this value.
"""

from __future__ import annotations

from typing import Any

from polly.records import record
from polly.shards import ShardState

# Display order; a cache discord.py does not have (or a newer discord.py renamed) is left out.
CACHE_NAMES = (
    "guilds",
    "channels",
    "threads",
    "roles",
    "emojis",
    "stickers",
    "members",
    "users",
    "messages",
    "voice_states",
    "private_channels",
)


@record
class CacheCensus:
    """Entries in each of discord.py's caches, and the settings that decide what they keep."""

    counts: tuple[tuple[str, int], ...]
    message_limit: int | None  # discord.py's max_messages; None: the message cache is off
    member_cache: str  # none, voice, joined or all
    intents: tuple[str, ...]  # the gateway intents in force that fill caches
    chunk_at_startup: bool
    shards: tuple[ShardState, ...] = ()  # the gateway shards of this process (one, 0, unsharded)

    def count(self, name: str) -> int | None:
        return dict(self.counts).get(name)

    @property
    def message_fill_percent(self) -> float | None:
        messages = self.count("messages")
        if not self.message_limit or messages is None:
            return None
        return 100.0 * messages / self.message_limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "message_limit": self.message_limit,
            "message_fill_percent": self.message_fill_percent,
            "member_cache": self.member_cache,
            "intents": list(self.intents),
            "chunk_guilds_at_startup": self.chunk_at_startup,
            "shards": [s.as_dict() for s in self.shards],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheCensus:
        return cls(
            counts=tuple((str(k), int(v)) for k, v in (data.get("counts") or {}).items()),
            message_limit=data.get("message_limit"),
            member_cache=str(data.get("member_cache", "?")),
            intents=tuple(data.get("intents") or ()),
            chunk_at_startup=bool(data.get("chunk_guilds_at_startup", False)),
            shards=tuple(ShardState.from_dict(s) for s in data.get("shards") or ()),
        )
