"""Async engine and pool built from settings, one transaction scope, and a pool monitor.

Work runs on Core connections, not ORM sessions: Polly's tables are Core tables (see
`polly.models`), and a session's machinery cost ~0.05 MiB more RSS on the first query.

SQLAlchemy has no event for overflow or for a checkout timeout, so `PoolMonitor` counts them
itself from the pool events it does have (connect, checkout, checkin, invalidate) and from the
timeouts caught where transactions are opened.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool, QueuePool, StaticPool

from polly.config import Settings
from polly.records import asdict, record
from polly.sqlite_file import DELETED, REPLACED, FileIncident, SqliteFileGuard, held_sidecars, set_aside
from polly.startup_errors import StartupError

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000


class MissingDriverError(StartupError):
    """The database URL needs a driver (an extra) that is not installed; the message says which."""


class PoolTimeoutError(RuntimeError):
    """No connection became free within the pool timeout."""


class DatabaseUnreachableError(RuntimeError):
    """The database server could not be reached (stopped, restarting, network): asyncpg raises
    these as plain OSErrors, which SQLAlchemy does not wrap."""


@record
class PoolStatus:
    """The pool's class, configured limits, live figures and counters at one moment.

    The sizing figures are None for pools without sizing (in-memory SQLite's StaticPool).
    """

    pool_class: str
    sized: bool
    ignored_settings: tuple[str, ...]
    checked_out: int
    connects: int
    checkouts: int
    checkins: int
    invalidations: int
    overflow_checkouts: int
    peak_checked_out: int
    timeouts: int
    pool_size: int | None = None
    max_overflow: int | None = None
    timeout_s: float | None = None
    recycle_s: int | None = None
    checked_in: int | None = None
    overflow: int | None = None

    @property
    def overflow_percent(self) -> float | None:
        """Overflow connections in use as a percent of DB_MAX_OVERFLOW (None without overflow)."""
        if not self.sized or not self.max_overflow:
            return None
        return 100.0 * (self.overflow or 0) / self.max_overflow

    def verdict(self, overflow_alert_percent: float) -> tuple[str, str]:
        """("timeouts" | "near_limit" | "ok", one line for people); near the limit is the same
        overflow share the pool-overflow alert fires at."""
        if self.timeouts:
            return "timeouts", f"timeouts seen: {self.timeouts} checkout(s) gave up"
        overflow = self.overflow_percent
        if overflow is not None and overflow >= overflow_alert_percent:
            return "near_limit", (
                f"near limit: {self.overflow} of {self.max_overflow} overflow connections in use "
                f"({self.checked_out} checked out)"
            )
        return "ok", "ok"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ignored_settings"] = list(self.ignored_settings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolStatus:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "ignored_settings": tuple(known.get("ignored_settings") or ())})


class PoolMonitor:
    """Counts what happens in one pool; read through `status()`."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.connects = 0
        self.checkouts = 0
        self.checkins = 0
        self.invalidations = 0
        self.overflow_checkouts = 0
        self.peak_checked_out = 0
        self.timeouts = 0
        self._checked_out = 0
        event.listen(pool, "connect", self._on_connect)
        event.listen(pool, "checkout", self._on_checkout)
        event.listen(pool, "checkin", self._on_checkin)
        event.listen(pool, "invalidate", self._on_invalidate)
        event.listen(pool, "soft_invalidate", self._on_invalidate)

    def detach(self) -> None:
        for name, fn in (
            ("connect", self._on_connect),
            ("checkout", self._on_checkout),
            ("checkin", self._on_checkin),
            ("invalidate", self._on_invalidate),
            ("soft_invalidate", self._on_invalidate),
        ):
            if event.contains(self.pool, name, fn):
                event.remove(self.pool, name, fn)

    def _on_connect(self, *_: Any) -> None:
        self.connects += 1

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts += 1
        # Our own count, not pool.checkedout(): under concurrency the pool has already handed
        # out later connections by the time this event runs for an earlier one.
        self._checked_out += 1
        if isinstance(self.pool, QueuePool) and self._checked_out > self.pool.size():
            self.overflow_checkouts += 1
        self.peak_checked_out = max(self.peak_checked_out, self._checked_out)

    def _on_checkin(self, *_: Any) -> None:
        self.checkins += 1
        self._checked_out = max(0, self._checked_out - 1)

    def _on_invalidate(self, *_: Any) -> None:
        self.invalidations += 1

    def record_timeout(self) -> None:
        self.timeouts += 1

    def checked_out(self) -> int:
        if isinstance(self.pool, QueuePool):
            return self.pool.checkedout()
        return self._checked_out

    def counters(self) -> dict[str, int]:
        return {
            "connects": self.connects,
            "checkouts": self.checkouts,
            "checkins": self.checkins,
            "invalidations": self.invalidations,
            "overflow_checkouts": self.overflow_checkouts,
            "peak_checked_out": self.peak_checked_out,
            "timeouts": self.timeouts,
        }


class Database:
    """The engine and its pool monitor, built from settings or around a host's own engine.

    With `engine=` (a host bot's), Polly watches that pool and keeps its `polly_*` tables in that
    database, and never disposes of the engine: the host owns it."""

    def __init__(self, settings: Settings, *, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.ignored_settings: list[str] = []
        self.owns_engine = engine is None
        self.engine: AsyncEngine = engine if engine is not None else self._build_engine()
        self._silent_until = float("-inf")  # the event loop's time until which the server is not tried
        self._silent_reason = ""
        self.monitor = PoolMonitor(self.engine.sync_engine.pool)
        path = settings.sqlite_path()
        self.file_guard = SqliteFileGuard(path) if path is not None else None
        # Once the file exists, new connections never create it: a connection opened after the file
        # was deleted would otherwise make an empty one there, which the next tick takes for a
        # replacement (and every checkpoint is gone). Creating is allowed while tables are made.
        self._may_create = True
        if path is not None and self.owns_engine and "uri=true" not in settings.database_url.lower():
            event.listen(self.engine.sync_engine, "do_connect", self._open_existing_only)

    def _build_engine(self) -> AsyncEngine:
        s = self.settings
        url = s.database_url
        # No statement caches: Polly runs a few statements a minute, and SQLAlchemy's compiled forms
        # (0.3 MiB) and sqlite3's prepared statements (0.2-0.3 MiB of native memory) cost the started
        # bot a fifth of its footprint to save well under a millisecond a minute. A host's own engine
        # (`polly.configure(engine=...)`) keeps its caches.
        options: dict[str, Any] = {"echo": s.db_echo, "query_cache_size": 0}
        if s.is_sqlite:
            options["connect_args"] = {"cached_statements": 0}
        if s.is_sqlite and s.sqlite_path() is None:
            # One in-memory database lives in one connection: a sized pool cannot work.
            options.update(poolclass=StaticPool, connect_args={"check_same_thread": False, "cached_statements": 0})
            self.ignored_settings = ["DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "DB_POOL_RECYCLE"]
            log.warning(
                "%s is an in-memory SQLite database: what Polly stores (checkpoints, alerts, history) is lost "
                "at exit. It uses one shared connection; ignoring %s",
                s.variable("database_url"),
                ", ".join(self.ignored_settings),
            )
        else:
            options.update(
                poolclass=AsyncAdaptedQueuePool,
                pool_size=s.pool_size(),
                max_overflow=s.max_overflow(),
                pool_timeout=s.db_pool_timeout,
                pool_recycle=s.db_pool_recycle,
                pool_pre_ping=True,
            )
            if not s.is_sqlite:  # asyncpg: give up on a server that accepts but never answers
                options["connect_args"] = {"timeout": s.db_connect_timeout, "command_timeout": s.db_statement_timeout}
        try:
            engine = create_async_engine(url, **options)
        except ModuleNotFoundError as exc:  # the driver of an extra that is not installed
            raise MissingDriverError(
                f"{s.variable('database_url')} needs the {exc.name} driver, which is not installed: "
                "install polly-memory-ops[postgres] (pip install 'polly-memory-ops[postgres]')"
            ) from None
        if s.is_sqlite:
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine

    async def create_tables(self) -> None:
        """Bring Polly's own tables to the latest schema (`polly.migrations`); nothing else in the
        database is touched. A SQLite file's folder is created first (OSError if it cannot be)."""
        from polly.migrations import upgrade

        await self._run_ddl(upgrade)

    async def open_tables(self, metadata: MetaData) -> None:
        """Create a host's own missing tables (`metadata`: Polly's own bot's polls and votes)."""
        from polly.migrations import create_host_tables

        await self._run_ddl(create_host_tables(metadata))

    async def _run_ddl(self, ddl: Callable[[Connection], object]) -> None:
        path = self.settings.sqlite_path() if self.owns_engine else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():  # refused here: a failed aiosqlite connect leaves its thread behind
                raise IsADirectoryError(errno.EISDIR, "it is a folder", str(path))
        self._may_create = True
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(ddl)
        finally:
            self._may_create = False
        if self.file_guard is not None:
            self.file_guard.remember()

    def _open_existing_only(self, _dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        if self._may_create or not cargs:
            return
        cargs[0] = f"file:{urllib.parse.quote(str(cargs[0]))}?mode=rw"
        cparams["uri"] = True

    async def recover_file(self, now: datetime) -> FileIncident | None:
        """If the SQLite file was deleted or replaced since it was opened: restore or reopen it.

        Deleted: the pooled connection still has the old file open, so its content, with every
        write made since the deletion, is copied back to the path (VACUUM INTO) before reopening;
        nothing is lost. Replaced: transactions were refused since (`transaction`); every
        connection is closed, the old file's -wal and -shm set aside (SQLite would replay that -wal
        onto the new file), and the new file is opened on its own and given any missing tables."""
        guard = self.file_guard
        problem = guard.problem() if guard is not None else None
        if guard is None or problem is None:
            return None
        lost = False
        outcome = "switched to the new file; nothing of the old one is in it (commands were refused meanwhile)"
        if problem == DELETED:
            lost = not await self._copy_open_file_to(guard.path)
            outcome = (
                "recreated it empty (no connection had the old file open any more)"
                if lost
                else "restored it from the copy the bot still had open: nothing was lost"
            )
        old_sidecars = held_sidecars(guard.path) if problem == REPLACED else []
        await self.engine.dispose()  # every pooled connection still points at the old file
        self.monitor.pool = self.engine.sync_engine.pool  # dispose() made a new pool, same listeners
        if (kept := set_aside(old_sidecars, now)) is not None:
            outcome += f"; the old file's unwritten changes (its -wal) are kept as {kept.name}"
        await self.create_tables()
        incident = FileIncident(problem, guard.path, now, outcome, lost)
        log.warning("%s", incident.describe())
        return incident

    async def _copy_open_file_to(self, path: Path) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            async with self.engine.connect() as conn:
                if path.exists():  # this connection is a new one: it created an empty file there
                    return False
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL's pages too
                await conn.exec_driver_sql("VACUUM INTO ?", (str(path),))
        except sa_exc.OperationalError:  # no connection had the old file open: a new one cannot open it
            return False
        return True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One pooled connection in one transaction: committed on success, rolled back on error,
        always returned to the pool."""
        loop_time = asyncio.get_running_loop().time()
        if loop_time < self._silent_until:
            # It did not answer a moment ago: fail fast instead of making every caller wait again.
            raise DatabaseUnreachableError(self._silent_reason)
        guard = self.file_guard
        if guard is not None and guard.problem() == REPLACED:
            # Until the monitor switches files a write would reach the old file, or replay its -wal onto the new one.
            raise DatabaseUnreachableError(f"{guard.explain(REPLACED)}; nothing is stored until then")
        try:
            async with self.engine.begin() as conn:
                yield conn
        except sa_exc.TimeoutError as exc:
            raise self._timeout_error() from exc
        except TimeoutError as exc:  # asyncpg's connect or command timeout: the server hangs
            raise self._did_not_answer() from exc
        except OSError as exc:
            raise DatabaseUnreachableError(f"cannot reach the database server: {exc}") from exc

    def _did_not_answer(self) -> DatabaseUnreachableError:
        s = self.settings
        wait = s.db_statement_timeout
        self._silent_until = asyncio.get_running_loop().time() + wait
        self._silent_reason = (
            f"the database server did not answer within {s.db_connect_timeout:g} s (connect) or {wait:g} s "
            f"(statement); not tried again for {wait:g} s"
        )
        log.warning("Database: %s", self._silent_reason)
        return DatabaseUnreachableError(self._silent_reason)

    def _timeout_error(self) -> PoolTimeoutError:
        self.monitor.record_timeout()
        s = self.settings
        log.warning("Database pool exhausted: no connection freed within %.1f s", s.db_pool_timeout)
        return PoolTimeoutError(
            f"The database pool is exhausted: all {s.pool_size()} + {s.max_overflow()} overflow "
            f"connections were in use for {s.db_pool_timeout:g} s. Raise DB_POOL_SIZE or "
            "DB_MAX_OVERFLOW, or look for sessions held open too long."
        )

    def get_pool_status(self) -> PoolStatus:
        """Pool class, configured limits, live figures (where the class has them) and counters."""
        pool = self.engine.sync_engine.pool
        sizing: dict[str, Any] = {}
        if isinstance(pool, QueuePool):
            sizing = {
                "pool_size": pool.size(),
                # Read from the pool, not the settings: a host's engine was built with its own.
                "max_overflow": pool._max_overflow,
                "timeout_s": pool.timeout(),
                "recycle_s": pool._recycle,
                "checked_in": pool.checkedin(),
                "overflow": max(0, pool.overflow()),
            }
        return PoolStatus(
            pool_class=type(pool).__name__,
            sized=isinstance(pool, QueuePool),
            ignored_settings=tuple(self.ignored_settings),
            checked_out=self.monitor.checked_out(),
            **self.monitor.counters(),
            **sizing,
        )

    async def dispose(self) -> None:
        self.monitor.detach()
        if not self.owns_engine:  # the host's engine: it closes it
            return
        await self.engine.dispose()
        # Said only after a working start: when the first connection failed, that is the one line.
        log.log(logging.INFO if self.monitor.connects else logging.DEBUG, "Database engine disposed")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
