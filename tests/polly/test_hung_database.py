"""A PostgreSQL server that hangs (its processes stopped, TCP still open), played by a proxy in front
of the real test server that stops passing bytes on: nothing waits on it for ever, and a memory
alert still reaches the channel."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from polly.enhanced_database import Database, DatabaseUnreachableError
from polly.memory_layer import MemoryLayer
from polly.registry import StructureRegistry
from tests.clocks import FakeClock
from tests.polly.test_alert_outbox import FakeSink
from tests.settings import make_settings

GUARD_S = 60  # a hang turns into a test failure instead of a stuck run


class HangingProxy:
    """Forwards TCP to the real server until `hang()`; then accepts, reads and answers nothing."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.hung = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def hang(self) -> None:
        self.hung = True

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        if self.hung:
            await self._swallow(reader)
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers.append(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.hung:
                await self._swallow(reader)
                return
            writer.write(data)
            await writer.drain()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


@pytest.fixture
async def proxied_url(postgres_url):
    url = make_url(postgres_url)
    proxy = HangingProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    yield proxy, url.set(port=port).render_as_string(hide_password=False)
    await proxy.close()


async def test_a_hung_server_fails_a_statement_within_its_timeout_then_fails_fast(tmp_path, proxied_url):
    proxy, url = proxied_url
    db = Database(make_settings(tmp_path, database_url=url, db_connect_timeout=1, db_statement_timeout=1))
    try:
        async with db.transaction() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
        proxy.hang()
        with pytest.raises(DatabaseUnreachableError, match="did not answer within 1 s"):
            async with asyncio.timeout(GUARD_S):
                async with db.transaction() as conn:
                    await conn.scalar(text("SELECT 1"))
        with pytest.raises(DatabaseUnreachableError, match="not tried again for 1 s"):
            async with db.transaction() as conn:  # no second wait: it fails at once
                pytest.fail("the hung server was tried again at once")
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(GUARD_S):
                await db.dispose()


async def test_a_hung_server_does_not_keep_a_memory_alert_from_the_channel(tmp_path, proxied_url):
    proxy, url = proxied_url
    settings = make_settings(
        tmp_path,
        database_url=url,
        db_connect_timeout=1,
        db_statement_timeout=1,
        alert_memory_percent=0.02,
        alert_hysteresis_percent=0.01,
        alert_for_checks=1,
        instance_name="hung-db",
    )
    layer = MemoryLayer(settings, clock=FakeClock(step_s=60), structures=StructureRegistry())
    await layer.open()
    try:
        proxy.hang()
        async with asyncio.timeout(GUARD_S):
            result = await layer.cycle.tick()
            sink = FakeSink()
            delivered = await layer.cycle.alerts.deliver(sink)
        assert [e.transition.rule.value for e in result.events] == ["memory_percent"]
        assert result.events[0].event_id is None  # the database could not store it: it waited in memory
        assert delivered == 1 and [a.transition.rule.value for a in sink.posts] == ["memory_percent"]
        assert "fleet heartbeat" in layer.cycle.health.failed_steps
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(GUARD_S):
                await layer.close()
