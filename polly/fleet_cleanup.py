"""Fleet-wide cleanup: one process asks every process sharing the PostgreSQL database to clean up.

The request goes out with NOTIFY on one channel every process LISTENs to (a connection each
keeps, through asyncpg); each process runs its own cleanup and writes its report to
`fleet_cleanup_reports`; the asking process reads the reports until every known instance has
answered or FLEET_REPLY_SECONDS have passed, and names the ones that did not. Reports older than
an hour are deleted as new ones arrive: the table stays small by construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from polly import clock
from polly.enhanced_database import Database
from polly.fleet_tables import fleet_cleanup_reports as table
from polly.gc_tools import CleanupReport
from polly.records import record

log = logging.getLogger(__name__)

CHANNEL = "polly_fleet_cleanup"
POLL_S = 0.2
KEEP_REPORTS = timedelta(hours=1)
REQUEST_FIELDS = {"id": 64, "who": 200, "from": 64}  # the request's fields and their longest values


def parse_request(payload: str) -> dict[str, str] | None:
    """A fleet cleanup request from a NOTIFY payload; None for anything else (logged, one line)."""
    try:
        request = json.loads(payload)
    except ValueError:
        request = None
    if not isinstance(request, dict) or not all(
        isinstance(request.get(name), str) and 0 < len(request[name]) <= longest
        for name, longest in REQUEST_FIELDS.items()
    ):
        log.warning("Ignoring a malformed fleet cleanup request on %s (%d characters)", CHANNEL, len(payload))
        return None
    return {name: request[name] for name in REQUEST_FIELDS}


@record
class CleanupAnswer:
    instance: str
    removed: int
    rss_before: int | None
    rss_after: int | None
    error: str | None = None


class FleetCleanup:
    """Answers fleet cleanup requests for this process, and asks the fleet for one."""

    def __init__(self, db: Database, instance: str, clean: Callable[[str], Awaitable[CleanupReport]]) -> None:
        self.db = db
        self.instance = instance
        self.clean = clean
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._answering: set[asyncio.Task[None]] = set()
        self.reconnects = 0

    async def start(self) -> None:
        """LISTEN on the channel, on a connection kept for it (checked at each monitor tick and
        before each request: after a PostgreSQL restart it listens again)."""
        await self._listen()

    async def _listen(self) -> None:
        self._conn = await self.db.engine.connect()
        raw = await self._conn.get_raw_connection()
        self._driver = raw.driver_connection  # asyncpg's connection: it knows when the server went away
        await self._driver.add_listener(CHANNEL, self._notified)

    def listening(self) -> bool:
        """Whether the LISTEN connection is open (asyncpg closes it when the server goes away)."""
        if self._conn is None or self._conn.closed or self._driver is None:
            return False
        return not self._driver.is_closed()

    async def ensure_listening(self) -> None:
        """Open a new LISTEN connection in place of a lost one (the monitor tick calls this; a
        failure propagates, and the next tick tries again)."""
        if self.listening():
            return
        old, self._conn, self._driver = self._conn, None, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.invalidate()
                await old.close()
        await self._listen()
        self.reconnects += 1
        log.info("Listening for fleet cleanup requests again (the connection had been lost)")

    async def stop(self) -> None:
        for task in list(self._answering):
            task.cancel()
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            await conn.invalidate()  # not returned to the pool still listening
        finally:
            await conn.close()

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        request = parse_request(payload)
        if request is None:
            return
        task = asyncio.get_running_loop().create_task(self._answer(request))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, request: dict[str, str]) -> None:
        error, report = None, None
        try:
            report = await self.clean(f"{request['who']} (fleet cleanup from {request['from']})")
        except Exception as exc:  # a cleanup already running here, or a failure: said in the answer
            error = str(exc) or type(exc).__name__
        now = clock.now()
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    insert(table).values(
                        request_id=request["id"],
                        instance=self.instance,
                        removed=report.removed if report else 0,
                        rss_before=report.rss_before if report else None,
                        rss_after=report.rss_after if report else None,
                        error=error[:500] if error else None,
                        at=now,
                    )
                )
                await conn.execute(delete(table).where(table.c.at < now - KEEP_REPORTS))
        except Exception:
            log.exception("Could not write this process's fleet cleanup report")

    async def ask(self, who: str, expected: list[str], wait_s: float) -> tuple[list[CleanupAnswer], list[str]]:
        """Ask every process to clean up; the answers that came within `wait_s`, and the expected
        instances that did not answer."""
        await self.ensure_listening()  # this process answers its own request too: listen first
        request_id = uuid.uuid4().hex
        payload = json.dumps({"id": request_id, "who": who, "from": self.instance})
        async with self.db.transaction() as conn:
            await conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload})
        deadline = asyncio.get_running_loop().time() + wait_s
        answers: dict[str, CleanupAnswer] = {}
        while True:
            async with self.db.transaction() as conn:
                rows = await conn.execute(select(table).where(table.c.request_id == request_id))
                for r in rows:
                    answers[r.instance] = CleanupAnswer(r.instance, r.removed, r.rss_before, r.rss_after, r.error)
            if set(expected) <= set(answers) or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        missing = sorted(set(expected) - set(answers))
        return sorted(answers.values(), key=lambda a: a.instance), missing
