"""What one run says of itself for a post-mortem (`polly.run_journal` keeps it, `polly.post_mortem`
judges it): the last sample's figures, what grew, what fired, the kernel's OOM-kill counter, and
whether it stopped cleanly."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from polly.formatting import MIB
from polly.records import asdict, record

RUN_KEY_PREFIX = "run:"


@record
class RunRecord:
    """What one run said of itself at its last tick, and whether it stopped cleanly."""

    run: str  # names the run in the report: host, pid, start
    host: str
    pid: int
    started_at: datetime
    cgroup: str | None = None  # the memory cgroup whose OOM-kill counter is recorded
    oom_kills: int | None = None
    at: datetime | None = None  # the last sample's time
    rss: int | None = None
    limit: int | None = None
    limit_source: str | None = None
    percent: float | None = None
    slope_mib_per_hour: float | None = None
    growing: tuple[str, ...] = ()  # the last automatic checkpoint's growing types
    firing: tuple[str, ...] = ()
    stopped_at: datetime | None = None  # a clean stop: SIGTERM, SIGINT, :quit, close()
    process: str = ""  # this process's random id: a container's bot is pid 1 on the same host every run

    def to_json(self) -> str:
        data = asdict(self)
        for name in ("started_at", "at", "stopped_at"):
            data[name] = data[name].isoformat() if data[name] is not None else None
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunRecord | None:
        """The stored record, or None when it is not one (another version's, damaged)."""
        try:
            data: dict[str, Any] = json.loads(text)
            values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            for name in ("started_at", "at", "stopped_at"):
                if values.get(name) is not None:
                    values[name] = datetime.fromisoformat(values[name])
            values["growing"] = tuple(values.get("growing") or ())
            values["firing"] = tuple(values.get("firing") or ())
            return cls(**values)
        except (ValueError, TypeError, AttributeError):
            return None

    @property
    def seconds_to_limit(self) -> float | None:
        """At the last sample's trend, when RSS would have reached the limit (None: not rising)."""
        if self.rss is None or self.limit is None or not self.slope_mib_per_hour or self.slope_mib_per_hour <= 0:
            return None
        return max(0.0, (self.limit - self.rss) / MIB / self.slope_mib_per_hour * 3600)
