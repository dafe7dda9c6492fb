"""The gateway shards this process runs, as plain values: latency, connected, guilds, and since
when a shard has been down (from the bot's connect and disconnect events)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from polly.records import record


@record
class ShardState:
    shard: int
    latency_s: float | None  # None until the first heartbeat is acknowledged
    connected: bool
    guilds: int
    down_since: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "latency_s": self.latency_s,
            "connected": self.connected,
            "guilds": self.guilds,
            "down_since": self.down_since.isoformat() if self.down_since else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardState:
        down = data.get("down_since")
        return cls(
            int(data["shard"]),
            data.get("latency_s"),
            bool(data.get("connected")),
            int(data.get("guilds", 0)),
            datetime.fromisoformat(down) if down else None,
        )


def usable_latency(value: float | None) -> float | None:
    """discord.py reports nan or inf before the first heartbeat: None for people and Prometheus."""
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def down_too_long(states: tuple[ShardState, ...], grace_s: float, now: datetime) -> list[str]:
    """A reason per shard disconnected for longer than `grace_s` (what /health answers 503 for)."""
    reasons = []
    for state in states:
        if state.connected:
            continue
        since = state.down_since
        if since is None or (now - since).total_seconds() > grace_s:
            how_long = "" if since is None else f" for {int((now - since).total_seconds())} s"
            reasons.append(f"shard {state.shard} disconnected{how_long} (grace {grace_s:g} s)")
    return reasons
