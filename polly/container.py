"""What the container tells about this process's memory, read at each tick: both ceilings, the
kernel's event counters (throttling, OOM kills), the cgroup's memory by kind, the working set and
memory pressure (PSI).

Every figure is what a file says or absent: a part this host cannot give (no cgroup, cgroup v1
without the file, a kernel without PSI) is named in `unavailable` with why, never shown as 0.
Names follow the kernel's and cAdvisor's (`memory.events`: high, max, oom, oom_kill; the working set
as kubelet computes it: usage minus inactive file pages). Paths are constructor parameters, so tests
read recorded trees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from polly.kernel_files import KernelFile
from polly.memory_limit import UNLIMITED_THRESHOLD, CgroupDir, CgroupReader
from polly.records import asdict, record

# memory.events counters that mean "the cgroup hit a ceiling and the kernel reclaimed" (throttling)
THROTTLE_EVENTS = ("high", "max")
OOM_KILL_EVENTS = ("oom_kill", "oom_group_kill")
STAT_PARTS = ("anon", "file", "kernel", "sock", "slab")
# cgroup v1's memory.stat names for the same parts (the hierarchy's totals: children included)
V1_STAT = {"anon": "total_rss", "file": "total_cache", "inactive_file": "total_inactive_file"}
V1_FILES = {"kernel": "memory.kmem.usage_in_bytes", "sock": "memory.kmem.tcp.usage_in_bytes"}


@record
class Pressure:
    """Memory pressure stall information: the share of time some (or all) tasks waited for memory."""

    source: str  # "cgroup" (the container's own) or "host" (/proc/pressure/memory)
    some_avg10: float
    some_avg60: float
    full_avg10: float | None = None
    full_avg60: float | None = None


@record
class ContainerMemory:
    """One reading of the memory cgroup and pressure; None where the host cannot say."""

    version: int | None = None  # 2, 1, or None outside a memory cgroup
    path: str | None = None
    usage: int | None = None  # memory.current / memory.usage_in_bytes
    limit_max: int | None = None  # hard limit (OOM beyond it); None: none
    limit_high: int | None = None  # v2 memory.high (throttling), v1 soft limit; None: none
    events: dict[str, int] = field(default_factory=dict)  # cumulative, only what this kernel counts
    stat: dict[str, int] = field(default_factory=dict)  # anon, file, kernel, sock, slab as present
    working_set: int | None = None
    pressure: Pressure | None = None
    unavailable: tuple[str, ...] = ()

    @property
    def high_kind(self) -> str:
        """What the second ceiling is called here: v2's memory.high, v1's soft limit."""
        return "soft" if self.version == 1 else "high"

    @property
    def throttle_events(self) -> int | None:
        """Times the cgroup hit memory.high or memory.max (v1: its failcnt), since it was created."""
        counted = [self.events[name] for name in THROTTLE_EVENTS if name in self.events]
        return sum(counted) if counted else None

    @property
    def oom_kills(self) -> int | None:
        """Processes of this cgroup the kernel's OOM killer killed, since it was created."""
        counted = [self.events[name] for name in OOM_KILL_EVENTS if name in self.events]
        return sum(counted) if counted else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerMemory:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if values.get("pressure") is not None:
            known = Pressure.__dataclass_fields__
            values["pressure"] = Pressure(**{k: v for k, v in values["pressure"].items() if k in known})
        values["unavailable"] = tuple(values.get("unavailable") or ())
        return cls(**values)


if TYPE_CHECKING:  # typing classes cost RSS at import (a memory tool counts its own): checkers only

    class ContainerSource(Protocol):
        """Where samples get the container's reading (the benchmarks replay recorded ones)."""

        def read(self) -> ContainerMemory: ...
        def close(self) -> None: ...


class ContainerMark:
    """A reading and its time: where a rule's window over the counters starts."""

    __slots__ = ("at", "container")

    def __init__(self, at: datetime, container: ContainerMemory) -> None:
        self.at = at
        self.container = container


# The kernel's `name value` lines (memory.events, memory.stat, memory.oom_control), found by one
# regular expression over the bytes: splitting memory.stat's ~40 lines cost more than reading it.
# A line is found by the newline before it (faster than `^` in MULTILINE mode, tried at every
# byte), so the text is parsed with a newline in front.
_KEYED_LINE = re.compile(rb"\n(\w+) (\d+)")
_V2_STAT_LINE = re.compile(rb"\n(anon|file|kernel|sock|slab|inactive_file) (\d+)")
_V1_STAT_LINE = re.compile(rb"\n(total_rss|total_cache|total_inactive_file) (\d+)")
_PRESSURE_LINE = re.compile(rb"\n(some|full) avg10=(\d+(?:\.\d+)?) avg60=(\d+(?:\.\d+)?)")


def parse_flat_keyed(text: bytes, line: re.Pattern[bytes] = _KEYED_LINE) -> dict[str, int]:
    """`name value` lines (memory.events, memory.stat, memory.oom_control) as a dict; `line`
    picks the names wanted."""
    return {name.decode("ascii"): int(value) for name, value in line.findall(b"\n" + text)}


def parse_pressure(text: bytes, source: str) -> Pressure | None:
    """`some avg10=0.12 avg60=... total=...` and `full ...` lines (PSI)."""
    found = _PRESSURE_LINE.findall(b"\n" + text)
    lines = {kind: (float(avg10), float(avg60)) for kind, avg10, avg60 in found}
    some, full = lines.get(b"some"), lines.get(b"full")
    if some is None:
        return None
    return Pressure(source, some[0], some[1], full[0] if full else None, full[1] if full else None)


def _limit(text: bytes) -> int | None:
    """A ceiling's file: "max" or a huge number (v1's page-rounded LONG_MAX) is no ceiling."""
    if text.strip() == b"max":
        return None
    value = int(text)
    return None if value >= UNLIMITED_THRESHOLD else value


# One cgroup version's reading: usage, both ceilings, the events, memory.stat's parts (inactive_file too).
_Reading = tuple[int | None, int | None, int | None, dict[str, int], dict[str, int]]


class ContainerReader:
    """Reads this process's memory cgroup and memory pressure; the folder is found once."""

    def __init__(
        self,
        cgroup: CgroupReader | None = None,
        proc_pressure: Path = Path("/proc/pressure/memory"),
        *,
        keep_open: bool = False,
    ) -> None:
        """`keep_open`: the files read stay open between readings until `close()` (`polly.kernel_files`)."""
        self.cgroup = cgroup or CgroupReader()
        self.proc_pressure = proc_pressure
        # found once: a process does not change cgroups (the limit is read once too)
        self._dir = self.cgroup.memory_dir()
        self._base = str(self._dir.path) if self._dir is not None else ""  # path joins cost more than reads
        self._absent: set[str] = set()  # files found missing once: a cgroup does not grow files
        self.keep_open = keep_open
        self._files: dict[str, KernelFile] = {}
        self._host_pressure = KernelFile(proc_pressure, keep_open=keep_open)

    def close(self) -> None:
        """Release the files kept open (read again, they open again)."""
        for file in self._files.values():
            file.close()
        self._host_pressure.close()

    def read(self) -> ContainerMemory:
        missing: list[str] = []
        found = self._dir
        pressure = self._pressure(found, missing)
        if found is None:
            missing.append("cgroup: this process is in no memory cgroup")
            return ContainerMemory(pressure=pressure, unavailable=tuple(missing))
        usage, ceiling, high, events, stat = self._v2(missing) if found.version == 2 else self._v1(missing)
        inactive = stat.pop("inactive_file", None)
        working_set = None if usage is None or inactive is None else max(0, usage - inactive)
        if working_set is None:
            missing.append("working set: needs the usage and inactive_file")
        return ContainerMemory(
            found.version, self._base, usage, ceiling, high, events, stat, working_set, pressure, tuple(missing)
        )

    def _v2(self, missing: list[str]) -> _Reading:
        usage = self._number("memory.current", missing)
        ceiling = self._ceiling("memory.max", missing)
        high = self._ceiling("memory.high", missing)
        events = self._keyed("memory.events", missing)
        parts = self._keyed("memory.stat", missing, _V2_STAT_LINE)
        self._say_missing(parts, missing)
        return usage, ceiling, high, events, parts

    def _v1(self, missing: list[str]) -> _Reading:
        usage = self._number("memory.usage_in_bytes", missing)
        ceiling = self._ceiling("memory.limit_in_bytes", missing)
        soft = self._ceiling("memory.soft_limit_in_bytes", missing)
        events: dict[str, int] = {}
        failcnt = self._number("memory.failcnt", missing)
        if failcnt is not None:
            events["max"] = failcnt  # v1 counts hits of the hard limit only
        oom = self._keyed("memory.oom_control", missing)
        if "oom_kill" in oom:  # kernels since 4.13
            events["oom_kill"] = oom["oom_kill"]
        stat = self._keyed("memory.stat", missing, _V1_STAT_LINE)
        parts = {part: stat[name] for part, name in V1_STAT.items() if name in stat}
        for part, name in V1_FILES.items():
            value = self._number(name, [])
            if value is not None:
                parts[part] = value
        self._say_missing(parts, missing)
        return usage, ceiling, soft, events, parts

    @staticmethod
    def _say_missing(parts: dict[str, int], missing: list[str]) -> None:
        absent = [p for p in STAT_PARTS if p not in parts]
        if absent:
            missing.append(f"memory.stat: {', '.join(absent)} not counted by this kernel or cgroup version")

    def _pressure(self, found: CgroupDir | None, missing: list[str]) -> Pressure | None:
        if found is not None and found.version == 2 and (text := self._text("memory.pressure", [])) is not None:
            return parse_pressure(text, "cgroup")
        # else the host's, said as such (cgroup v1, or PSI off for cgroups: psi_cgroups=0)
        try:
            return parse_pressure(self._host_pressure.read(), "host")
        except OSError as exc:
            missing.append(f"pressure: {self.proc_pressure} not readable ({exc.strerror or exc}; kernel without PSI?)")
            return None

    def _text(self, name: str, missing: list[str]) -> bytes | None:
        if name not in self._absent:
            file = self._files.get(name)
            if file is None:
                file = self._files[name] = KernelFile(f"{self._base}/{name}", keep_open=self.keep_open)
            try:
                return file.read()
            except OSError:
                self._absent.add(name)
                del self._files[name]
        missing.append(f"{name}: not in this cgroup")
        return None

    def _number(self, name: str, missing: list[str], parse: Callable[[bytes], int | None] = int) -> int | None:
        text = self._text(name, missing)
        try:
            return None if text is None else parse(text)
        except ValueError:
            missing.append(f"{name}: unreadable value")
            return None

    def _ceiling(self, name: str, missing: list[str]) -> int | None:
        return self._number(name, missing, _limit)

    def _keyed(self, name: str, missing: list[str], line: re.Pattern[bytes] = _KEYED_LINE) -> dict[str, int]:
        text = self._text(name, missing)
        return {} if text is None else parse_flat_keyed(text, line)
