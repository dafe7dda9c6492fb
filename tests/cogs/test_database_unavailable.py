"""/mem while the database refuses writes or is away: one line saying it is unavailable and that
nothing changed (not the apology), and the bot recovers by itself when the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from polly.ext.cog import memory_cog
from tests.cogs.helpers import add_ops_guild, last_reply, reply_text
from tests.settings import make_settings


async def test_a_read_only_sqlite_database_is_unavailable_and_nothing_changes(simcord_env, simcord_bot):
    _guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    count = await memory_cog(simcord_bot).monitor.refresh_checkpoint_count()
    async with simcord_bot.db.engine.connect() as conn:  # the one pooled connection now refuses writes
        await conn.exec_driver_sql("PRAGMA query_only=ON")
    try:
        result = await operator.slash(ops, "mem checkpoint", label="read-only")
    finally:
        async with simcord_bot.db.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA query_only=OFF")
    text = last_reply(result).content
    assert "database is unavailable" in text and "readonly database" in text and "nothing was changed" in text
    assert await memory_cog(simcord_bot).monitor.refresh_checkpoint_count() == count


class TcpProxy:
    """Forwards a loopback port to PostgreSQL; `stop()` is the server going away (refused, reset)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture
async def proxy(postgres_url):
    target = int(postgres_url.rsplit(":", 1)[1].split("/", 1)[0])
    running = TcpProxy(target)
    await running.start()
    yield running
    with contextlib.suppress(Exception):
        await running.stop()


@pytest.fixture
def bot_settings(request, tmp_path):
    if "proxy" not in request.fixturenames:
        return make_settings(tmp_path)
    proxy, url = request.getfixturevalue("proxy"), request.getfixturevalue("postgres_url")
    host_port = url.rsplit("@", 1)[1].split("/", 1)[0]
    return make_settings(tmp_path, database_url=url.replace(host_port, f"127.0.0.1:{proxy.port}"), db_pool_timeout=2)


async def test_a_stopped_postgresql_is_unavailable_and_the_bot_recovers_when_it_returns(
    proxy, simcord_env, simcord_bot
):
    _guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
    assert "stored" in reply_text(await operator.slash(ops, "mem checkpoint"))
    port = proxy.port

    await proxy.stop()  # as a stopped server: open connections reset, new ones refused
    result = await operator.slash(ops, "mem checkpoint", label="while-stopped")
    text = last_reply(result).content
    assert result.ephemeral
    assert "database is unavailable" in text and "nothing was changed" in text and "Sorry" not in text

    proxy.port = port
    await proxy.start()  # the server is back: the next command works without a restart
    back = f"back-{uuid.uuid4().hex[:8]}"  # the shared test database keeps earlier runs' checkpoints
    assert f"Checkpoint '{back}' stored" in reply_text(await operator.slash(ops, "mem checkpoint", label=back))
    assert await memory_cog(simcord_bot).monitor.get_checkpoint("while-stopped") is None
