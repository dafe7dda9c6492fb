"""Noticing that the SQLite file was deleted or replaced under the running bot.

SQLite keeps reading and writing a deleted file through the connection it has open, without an
error: everything written after the deletion would vanish at the next start. The monitor asks at
every tick (one stat() call) whether the path still names the file the bot opened; the database
then recovers (polly.enhanced_database.Database.recover_file) and the cog says so in the alert
channel, /health answering 503 meanwhile.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from polly.records import record

DELETED = "deleted"
REPLACED = "replaced"


@record
class FileIncident:
    """What happened to the database file, and what the bot did about it."""

    kind: str  # DELETED or REPLACED
    path: Path
    at: datetime
    outcome: str
    lost: bool  # whether writes made since the incident are gone

    def describe(self) -> str:
        return f"The SQLite database file {self.path} was {self.kind} while the bot ran: {self.outcome}."


class SqliteFileGuard:
    """Remembers which file the database path named when it was opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None

    def remember(self) -> None:
        """Call after opening (or reopening) the database."""
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """DELETED or REPLACED when the path no longer names the file that was opened, else None."""
        if self._identity is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return DELETED
        except OSError:
            return None  # cannot tell (a permission change): not evidence of a new file
        return None if (st.st_dev, st.st_ino) == self._identity else REPLACED

    def explain(self, problem: str) -> str:
        """The /health reason while the problem lasts."""
        return f"SQLite file {self.path} was {problem}; the monitor recovers it at its next tick"


Sidecar = tuple[Path, tuple[int, int]]


def held_sidecars(path: Path) -> list[Sidecar]:
    """The -wal and -shm beside `path` that this process holds open. Once `path` was replaced,
    they are the old file's: SQLite would replay that -wal onto the new file (nothing in a -wal
    says which database it belongs to). Where open files cannot be listed, every one present."""
    held = _open_file_ids()
    found = []
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        try:
            st = os.stat(side)
        except OSError:
            continue
        identity = (st.st_dev, st.st_ino)
        if held is None or identity in held:
            found.append((side, identity))
    return found


def set_aside(sidecars: list[Sidecar], now: datetime) -> Path | None:
    """Move the old file's -wal out of the new file's way (kept, renamed: it may hold the last
    writes to the old file) and remove its -shm (an index, rebuilt). Call once no connection has
    them open; a sidecar that is no longer the same file is left alone. The -wal's new path, if kept."""
    kept = None
    for side, identity in sidecars:
        try:
            st = os.stat(side)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) != identity:
            continue
        if side.name.endswith("-wal") and st.st_size > 0:
            kept = side.with_name(f"{side.name}.replaced-{now:%Y%m%dT%H%M%SZ}")
            os.replace(side, kept)
        else:
            side.unlink()
    return kept


def _open_file_ids() -> set[tuple[int, int]] | None:
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    ids = set()
    for fd in fds:
        try:
            st = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids
