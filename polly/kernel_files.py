"""Small kernel files (`/proc`, cgroupfs) read at every tick, kept open and read again from their
start.

The kernel makes these files' text afresh at each read from offset 0 (seq_file), so a descriptor
kept open gives the same figures as opening the path again. Measured on this project's machine:
eleven files (status, meminfo, the memory cgroup's, PSI) take 12 µs with `os.pread` on kept
descriptors against 32 µs opened and closed each time, a fifth of the whole monitor tick's
budget. The cost: a descriptor per file while the monitor runs (`close()` releases them; the
memory layer calls it when it closes), none of them inherited by child processes.

A descriptor of `/proc/self/...` names the process that opened it: after a fork, the child opens
its own again (a fork counter, bumped in the child).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

CHUNK = 16384  # every file read here is smaller (memory.stat, the largest, ~1.5 KiB)

_forks = 0  # bumped in a forked child: descriptors opened before the fork name the parent


def _after_fork_in_child() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class KernelFile:
    """One small kernel file: `read()` returns its whole text now, as bytes.

    With `keep_open`, the descriptor stays open between reads (see the module docstring);
    without, each read opens and closes it (a figure read now and then). A read that fails on a
    kept descriptor opens the path once more before it gives up: the `OSError` of that open or
    read is what the caller sees, as with a plain open."""

    __slots__ = ("_fd", "_forks", "_lock", "keep_open", "path")

    def __init__(self, path: Path | str, *, keep_open: bool = True) -> None:
        self.path = os.fspath(path)
        self.keep_open = keep_open
        self._fd: int | None = None
        self._forks = _forks
        self._lock = threading.Lock()  # the worker thread reads too; a reopen must not race a read

    def read(self) -> bytes:
        if not self.keep_open:
            once = os.open(self.path, os.O_RDONLY)
            try:
                return _whole(once)
            finally:
                os.close(once)
        with self._lock:
            kept = self._fd
            if kept is None or self._forks != _forks:
                return _whole(self._reopen())
            try:
                return _whole(kept)
            except OSError:  # the file went (a cgroup removed) or the descriptor was closed under us
                return _whole(self._reopen())

    def close(self) -> None:
        with self._lock:
            self._close()

    def _reopen(self) -> int:
        self._close()
        fd = os.open(self.path, os.O_RDONLY)  # not inherited: Python opens with O_CLOEXEC
        self._fd, self._forks = fd, _forks
        return fd

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # closed already: nothing to release
                os.close(fd)

    def __del__(self) -> None:
        # dropped without close(): its descriptor goes with it, as a file object's does
        try:  # noqa: SIM105 (contextlib itself may be gone at interpreter exit)
            self._close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"KernelFile({self.path!r}, {'open' if self._fd is not None else 'closed'})"


def _whole(fd: int) -> bytes:
    data = os.pread(fd, CHUNK, 0)
    if len(data) < CHUNK:
        return data
    parts = [data]  # larger than expected: read on until the end
    while chunk := os.pread(fd, CHUNK, CHUNK * len(parts)):
        parts.append(chunk)
    return b"".join(parts)
