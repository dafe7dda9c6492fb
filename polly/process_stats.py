"""What this process and its host use: read from /proc on Linux, through psutil elsewhere.

Why not psutil everywhere: importing it adds 0.85 MiB of RSS to the running bot (measured with
the footprint benchmark, after discord.py and SQLAlchemy), a third of Polly's whole budget, for a
handful of numbers that Linux publishes as text. psutil reads the same files (`statm`,
`smaps_rollup`, `status`, `fd/`, `meminfo`), so the figures are the same; the tests compare the
two on the real process. psutil is imported only where /proc is missing (macOS, Windows).

Like prometheus_client's process collector, the /proc paths are constructor parameters, so tests
point them at fixture files.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polly import clock
from polly.kernel_files import KernelFile
from polly.records import record, replace

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class AccessDenied(PermissionError):
    """The host forbids reading a figure (hardened /proc); the others are still readable."""


@record
class ProcessMemory:
    """RSS and VMS always; the rest where the platform says it (None: not read or not readable).

    `anon`, `file` and `shmem` split RSS (anonymous pages, file-backed pages, shared memory);
    `peak` is the highest RSS so far. `uss` and `pss` come only from `memory_full_info()`."""

    rss: int
    vms: int
    uss: int | None = None
    pss: int | None = None
    swap: int | None = None
    anon: int | None = None
    file: int | None = None
    shmem: int | None = None
    peak: int | None = None


@record
class HostMemory:
    total: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * (self.total - self.available) / self.total if self.total else 0.0


if TYPE_CHECKING:  # a Protocol class costs ~4 KiB at import; checkers are its only readers
    from typing import Protocol

    class ProcessStats(Protocol):
        def memory_info(self) -> ProcessMemory: ...
        def memory_full_info(self) -> ProcessMemory: ...
        def num_threads(self) -> int: ...
        def num_fds(self) -> int: ...
        def create_time(self) -> float: ...
        def host_memory(self) -> HostMemory: ...
        def oneshot(self) -> contextlib.AbstractContextManager[Any]: ...
        def close(self) -> None: ...


class LinuxProcess:
    """This process's figures from /proc/self (or another /proc/<pid>)."""

    def __init__(
        self, proc: Path = Path("/proc/self"), proc_root: Path = Path("/proc"), *, keep_open: bool = False
    ) -> None:
        """`keep_open`: `status` and `meminfo` stay open between reads (`polly.kernel_files`: a
        reader of every tick), until `close()`."""
        self.proc = proc
        self.proc_root = proc_root
        self._status_file = KernelFile(proc / "status", keep_open=keep_open)
        self._meminfo_file = KernelFile(proc_root / "meminfo", keep_open=keep_open)
        self._fd_dir = str(proc / "fd")
        self._status_fields: dict[bytes, int] | None = None  # kept inside oneshot(): one read for every figure

    def close(self) -> None:
        """Release the files kept open (read again, they open again)."""
        self._status_file.close()
        self._meminfo_file.close()

    def memory_info(self) -> ProcessMemory:
        """From `status` (one small read, constant cost): RSS and its anon/file/shmem split, VMS,
        swap and peak. `statm` where `status` lacks them (kernels before 4.5 lack the split)."""
        fields = self._status()
        if b"VmRSS" not in fields:
            size, resident = (self.proc / "statm").read_text().split()[:2]
            return ProcessMemory(rss=int(resident) * PAGE_SIZE, vms=int(size) * PAGE_SIZE)
        get = fields.get
        return ProcessMemory(
            fields[b"VmRSS"] * 1024,
            get(b"VmSize", 0) * 1024,
            None,
            None,
            _kib(get(b"VmSwap")),
            _kib(get(b"RssAnon")),
            _kib(get(b"RssFile")),
            _kib(get(b"RssShmem")),
            _kib(get(b"VmHWM")),
        )

    def memory_full_info(self) -> ProcessMemory:
        """`memory_info()` plus USS (private pages) and PSS, as psutil computes them. Reading
        `smaps_rollup` walks every mapping: its cost grows with the process (1 ms at 90 MiB,
        5 ms at 700 MiB), so the monitor reads it only when a figure is shown."""
        basic = self.memory_info()
        try:
            fields = _kib_fields(self._smaps_text(), SMAPS_FIELDS)
        except PermissionError as exc:
            raise AccessDenied(str(exc)) from exc
        uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0) + fields.get("Private_Hugetlb", 0)
        return replace(basic, uss=uss, pss=fields.get("Pss"), swap=fields.get("Swap", basic.swap))

    def _status(self) -> dict[bytes, int]:
        if self._status_fields is not None:
            return self._status_fields
        return _status_fields(self._status_file.read())

    def _smaps_text(self) -> str:
        rollup = self.proc / "smaps_rollup"
        if rollup.exists():  # Linux 4.14+: the kernel sums the mappings
            return rollup.read_text()
        return (self.proc / "smaps").read_text()

    def num_threads(self) -> int:
        threads = self._status().get(b"Threads")
        if threads is None:
            raise OSError(f"no Threads line in {self.proc / 'status'}")
        return threads

    def num_fds(self) -> int:
        try:
            return len(os.listdir(self._fd_dir))
        except PermissionError as exc:
            raise AccessDenied(str(exc)) from exc

    def create_time(self) -> float:
        """Unix seconds when the process started (boot time plus its start in clock ticks)."""
        stat = (self.proc / "stat").read_text()
        after_name = stat[stat.rindex(")") + 2 :].split()
        start_ticks = int(after_name[19])  # field 22 of proc(5), counted from field 3
        for line in (self.proc_root / "stat").read_text().splitlines():
            if line.startswith("btime"):
                return int(line.split()[1]) + start_ticks / os.sysconf("SC_CLK_TCK")
        return clock.timestamp()

    def host_memory(self) -> HostMemory:
        fields = dict(_MEMINFO_LINE.findall(b"\n" + self._meminfo_file.read()[:MEMINFO_HEAD]))
        if b"MemTotal" not in fields:
            raise OSError(f"no MemTotal line in {self.proc_root / 'meminfo'}")
        total = int(fields[b"MemTotal"]) * 1024
        available = fields.get(b"MemAvailable")
        if available is None:  # kernels before 3.14: psutil's estimate
            return HostMemory(
                total, sum(int(fields.get(name, 0)) for name in (b"MemFree", b"Buffers", b"Cached")) * 1024
            )
        return HostMemory(total, int(available) * 1024)

    def oneshot(self) -> contextlib.AbstractContextManager[Any]:
        """`status` is read once for the figures read inside (memory, threads), as psutil's oneshot."""
        return _OneRead(self)


class _OneRead:
    """`LinuxProcess.oneshot()`: a plain class, a third of what a generator-based one costs each tick."""

    __slots__ = ("reader",)

    def __init__(self, reader: LinuxProcess) -> None:
        self.reader = reader

    def __enter__(self) -> None:
        self.reader._status_fields = _status_fields(self.reader._status_file.read())

    def __exit__(self, *exc: object) -> None:
        self.reader._status_fields = None


class PsutilProcess:
    """The same figures through psutil, where there is no /proc."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self._psutil.AccessDenied as exc:
            raise AccessDenied(str(exc)) from exc

    def memory_info(self) -> ProcessMemory:
        info = self._process.memory_info()
        return ProcessMemory(info.rss, info.vms)

    def memory_full_info(self) -> ProcessMemory:
        with self._translated():
            info = self._process.memory_full_info()
        return ProcessMemory(info.rss, info.vms, info.uss, getattr(info, "pss", None), getattr(info, "swap", None))

    def num_threads(self) -> int:
        return self._process.num_threads()

    def num_fds(self) -> int:
        with self._translated():
            if not hasattr(self._process, "num_fds"):  # Windows has handles, not descriptors
                raise AccessDenied("no file descriptor count on this platform")
            return self._process.num_fds()

    def create_time(self) -> float:
        return self._process.create_time()

    def host_memory(self) -> HostMemory:
        vm = self._psutil.virtual_memory()
        return HostMemory(vm.total, vm.available)

    def oneshot(self) -> contextlib.AbstractContextManager[Any]:
        return self._process.oneshot()

    def close(self) -> None:
        """Nothing is kept open here."""


def current_process(*, keep_open: bool = False) -> ProcessStats:
    """This process: from /proc where it exists (`keep_open`: see `LinuxProcess`), else through psutil."""
    if Path("/proc/self/statm").exists():
        return LinuxProcess(keep_open=keep_open)
    return PsutilProcess()


def process_rss() -> int:
    """This process's resident set size in bytes."""
    return _process().memory_info().rss


_current: ProcessStats | None = None


def _process() -> ProcessStats:
    global _current
    if _current is None:
        _current = current_process()
    return _current


SMAPS_FIELDS = frozenset({"Pss", "Private_Clean", "Private_Dirty", "Private_Hugetlb", "Swap"})
# The lines a tick reads, found by one regular expression over the bytes: a tenth of what
# splitting every line costs (status has ~55 lines, meminfo ~50; its five come in the first 300
# bytes). A line is found by the newline before it (`^` in MULTILINE mode is tried at every
# byte: 2.7x slower), so the text is read with a newline in front.
_STATUS_LINE = re.compile(rb"\n(VmSize|VmHWM|VmRSS|RssAnon|RssFile|RssShmem|VmSwap|Threads):[ \t]+(\d+)")
_MEMINFO_LINE = re.compile(rb"\n(MemTotal|MemFree|MemAvailable|Buffers|Cached):[ \t]+(\d+)")
MEMINFO_HEAD = 512


def _status_fields(text: bytes) -> dict[bytes, int]:
    """`status`'s figures by name: kB as written (Threads: a count)."""
    return {name: int(value) for name, value in _STATUS_LINE.findall(b"\n" + text)}


def _kib(value: int | None) -> int | None:
    return None if value is None else value * 1024


def _kib_fields(text: str, wanted: frozenset[str]) -> dict[str, int]:
    """The `wanted` `Name:   123 kB` lines of smaps as bytes by name, summed over mappings."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name not in wanted:
            continue
        amount = rest.split()
        if len(amount) == 2 and amount[1] == "kB" and amount[0].isdigit():
            fields[name] = fields.get(name, 0) + int(amount[0]) * 1024
    return fields
