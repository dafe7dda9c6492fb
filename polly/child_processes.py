"""The bot's child processes (ffmpeg, yt-dlp, the chart drawer while it draws) and their RSS.

Read from `/proc`: each thread's `children` file (the kernel's list, O(children)), else a scan of
`/proc/*/stat` for this process as parent (kernels without CONFIG_PROC_CHILDREN). The whole tree
below the bot is counted (a shell's own child included). None where `/proc` cannot be read.
"""

from __future__ import annotations

import os
from pathlib import Path

from polly.bot_census import ChildProcess

MAX_CHILDREN = 1000  # a fork bomb must not make the census O(it)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children_file(pid: int, proc: Path) -> list[int] | None:
    """The kernel's list of `pid`'s children (None: this kernel has no such file)."""
    found: list[int] = []
    try:
        threads = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return []  # it ended
    readable = False
    for thread in threads:
        try:
            found += [int(p) for p in (thread / "children").read_text().split()]
            readable = True
        except (OSError, ValueError):
            continue
    return found if readable else None


def _parents(proc: Path) -> dict[int, list[int]]:
    """Every process's children from one scan of `/proc/*/stat` (the fallback: O(processes))."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _describe(pid: int, proc: Path) -> ChildProcess | None:
    base = proc / str(pid)
    try:
        rss_pages = int((base / "statm").read_text().split()[1])
        name = (base / "comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None  # it ended while we looked
    return ChildProcess(pid, name, rss_pages * PAGE)


def child_processes(pid: int | None = None, proc: Path = Path("/proc")) -> tuple[ChildProcess, ...] | None:
    """Every process below `pid` (this one by default), parents first; None without `/proc`."""
    pid = os.getpid() if pid is None else pid
    if not (proc / str(pid)).is_dir():
        return None
    scanned: dict[int, list[int]] | None = None

    def children_of(parent: int) -> list[int]:
        nonlocal scanned
        if scanned is None:
            listed = _children_file(parent, proc)
            if listed is not None:
                return listed
            scanned = _parents(proc)
        return scanned.get(parent, [])

    out: list[ChildProcess] = []
    queue = children_of(pid)
    seen = {pid}
    while queue and len(out) < MAX_CHILDREN:
        child = queue.pop(0)
        if child in seen:
            continue
        seen.add(child)
        described = _describe(child, proc)
        if described is not None:
            out.append(described)
            queue += children_of(child)
    return tuple(out)
