"""The endpoints' HTTP server, spoken to over raw sockets: odd and hostile requests get a status,
never a traceback, and the server keeps serving."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import socket

import pytest

from polly.ext import http_server
from polly.ext.http_server import HttpServer, Request, Response


async def ok(_request: Request) -> Response:
    return Response(200, b"fine")


async def broken(_request: Request) -> Response:
    raise RuntimeError("boom")


def needs_token(request: Request) -> Response | None:
    return None if request.headers.get("authorization") == "Bearer right" else Response.json({"error": "no"}, 401)


@pytest.fixture
async def port():
    server = HttpServer(
        {"/ok": ok, "/broken": broken, "/private": ok}, lambda r: needs_token(r) if r.path == "/private" else None
    )
    bound = await server.start("127.0.0.1", 0)
    yield bound
    await server.stop()


async def exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_a_get_is_answered_and_the_connection_closed(port):
    answer = await exchange(port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 200 and answer.endswith(b"\r\n\r\nfine")
    assert b"Content-Length: 4\r\n" in answer and b"Connection: close\r\n" in answer


async def test_head_has_no_body_and_other_methods_are_405(port):
    assert (await exchange(port, b"HEAD /ok HTTP/1.1\r\n\r\n")).endswith(b"\r\n\r\n")
    answer = await exchange(port, b"POST /ok HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert status_of(answer) == 405 and b"Allow: GET, HEAD" in answer


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /ok HTTP/2.0\r\n\r\n", 505),
        (b"GET /ok HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", 431),
        (b"GET /ok HTTP/1.1\r\n" + b"X: y\r\n" * 10_000 + b"\r\n", 431),
        (b"GET /ok HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /private HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\xe9\r\n\r\n", 401),
    ],
)
async def test_bad_requests_get_a_status_without_a_traceback(port, raw, status, caplog):
    caplog.set_level(logging.DEBUG)
    assert status_of(await exchange(port, raw)) == status
    assert not [r for r in caplog.records if r.exc_info]
    assert status_of(await exchange(port, b"GET /ok HTTP/1.1\r\n\r\n")) == 200  # still serving


async def test_a_failing_handler_is_a_500_with_its_traceback_in_the_log(port, caplog):
    assert status_of(await exchange(port, b"GET /broken HTTP/1.1\r\n\r\n")) == 500
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


async def test_a_client_that_never_finishes_its_head_gets_408(port, monkeypatch):
    monkeypatch.setattr(http_server, "HEAD_TIMEOUT_S", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: slow")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert status_of(answer) == 408


async def test_at_most_max_in_flight_connections_are_served_at_once_and_the_rest_wait(monkeypatch):
    monkeypatch.setattr(http_server, "MAX_IN_FLIGHT", 4)
    release = asyncio.Event()
    inside, most = 0, 0

    async def slow(_request: Request) -> Response:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await release.wait()
        inside -= 1
        return Response(200, b"done")

    server = HttpServer({"/slow": slow})
    bound = await server.start("127.0.0.1", 0)
    try:
        answers = [asyncio.create_task(exchange(bound, b"GET /slow HTTP/1.1\r\n\r\n")) for _ in range(10)]
        for _ in range(50):
            await asyncio.sleep(0.01)
        assert most == 4 and not any(a.done() for a in answers)
        release.set()
        assert [status_of(a) for a in await asyncio.gather(*answers)] == [200] * 10
    finally:
        await server.stop()


async def test_heads_that_arrive_together_are_started_a_batch_per_turn_of_the_loop(monkeypatch):
    """Scrapers that connected together send their heads together and one turn of the loop reads
    them all: they are started SERVE_BATCH per turn, so the bot's other tasks run in between (started
    all in the next turn, 1,000 scrapes stalled the loop ~50 ms)."""
    monkeypatch.setattr(http_server, "SERVE_BATCH", 4)
    turn = 0
    started: collections.Counter[int] = collections.Counter()

    async def count_turns() -> None:
        nonlocal turn
        while True:
            turn += 1
            await asyncio.sleep(0)  # one step per turn of the loop

    async def record_turn(_request: Request) -> Response:
        started[turn] += 1
        return Response(200, b"counted")

    server = HttpServer({"/count": record_turn})
    bound = await server.start("127.0.0.1", 0)
    counter = asyncio.create_task(count_turns())
    streams = [await asyncio.open_connection("127.0.0.1", bound) for _ in range(40)]
    try:
        while server.connections < 40:
            await asyncio.sleep(0.01)
        for _reader, writer in streams:  # every head sent in one step: read in one turn
            writer.write(b"GET /count HTTP/1.1\r\n\r\n")
        answers = await asyncio.wait_for(asyncio.gather(*(reader.read() for reader, _ in streams)), 10)
        assert [status_of(a) for a in answers] == [200] * 40
        assert sum(started.values()) == 40
        assert max(started.values()) <= 4 and len(started) >= 10
    finally:
        counter.cancel()
        for _reader, writer in streams:
            writer.close()
        await server.stop()


async def test_unfinished_heads_that_hang_up_together_are_closed_a_batch_per_turn(monkeypatch):
    """When a crowd of idle clients hangs up at once (an attack ending), their connections are
    closed CLOSE_BATCH per turn of the loop, not all in one (500 in one turn: ~8 ms)."""
    monkeypatch.setattr(http_server, "CLOSE_BATCH", 4)
    server = HttpServer({"/ok": ok})
    port = await server.start("127.0.0.1", 0)
    idle = await _hold_unfinished_heads(port, 40)
    open_per_turn: list[int] = []
    try:
        while server.connections < 40:
            await asyncio.sleep(0.01)
        for writer in idle:  # every client hangs up in one step: read in one turn
            writer.close()
        for _ in range(1000):
            open_per_turn.append(server.connections)
            if server.connections == 0:
                break
            await asyncio.sleep(0)  # one turn of the loop
        assert open_per_turn[-1] == 0
        closed_per_turn = [a - b for a, b in itertools.pairwise(open_per_turn)]
        assert max(closed_per_turn) <= 4 and sum(closed_per_turn) == 40
        # and the server still answers
        assert status_of(await asyncio.wait_for(exchange(port, b"GET /ok HTTP/1.1\r\n\r\n"), 5)) == 200
    finally:
        await server.stop()


async def test_a_burst_of_1000_connections_is_answered_in_full(port):
    answers = await asyncio.gather(*(exchange(port, b"GET /ok HTTP/1.1\r\n\r\n") for _ in range(1000)))
    assert [status_of(a) for a in answers] == [200] * 1000


async def test_a_host_name_is_bound_and_the_port_freed_on_stop():
    server = HttpServer({"/ok": ok})
    bound = await server.start("localhost", 0)
    try:
        assert status_of(await exchange(bound, b"GET /ok HTTP/1.1\r\n\r\n")) == 200
    finally:
        await server.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is fine
        probe.bind(("127.0.0.1", bound))  # stop() freed the port


async def _hold_unfinished_heads(port: int, count: int) -> list[asyncio.StreamWriter]:
    """Clients that connect, send part of a head and then nothing (slowloris)."""
    writers = []
    for _ in range(count):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: slow")
        await writer.drain()
        writers.append(writer)
    return writers


async def test_unfinished_heads_take_no_slot_so_a_scraper_is_answered(monkeypatch):
    """Slots go to complete requests only: 4 slots and 40 idle heads still let a scraper in (64 idle
    heads used to hold every slot until they timed out)."""
    monkeypatch.setattr(http_server, "MAX_IN_FLIGHT", 4)
    server = HttpServer({"/ok": ok})
    port = await server.start("127.0.0.1", 0)
    idle = await _hold_unfinished_heads(port, 40)
    try:
        answer = await asyncio.wait_for(exchange(port, b"GET /ok HTTP/1.1\r\n\r\n"), 5)
        assert status_of(answer) == 200
    finally:
        for writer in idle:
            writer.close()
        await server.stop()


async def test_when_full_the_oldest_unfinished_head_makes_room_for_a_newcomer(monkeypatch):
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 20)
    server = HttpServer({"/ok": ok})
    port = await server.start("127.0.0.1", 0)
    idle = await _hold_unfinished_heads(port, 60)
    try:
        await asyncio.sleep(0.05)
        assert server.connections <= 20
        answer = await asyncio.wait_for(exchange(port, b"GET /ok HTTP/1.1\r\n\r\n"), 5)
        assert status_of(answer) == 200
    finally:
        for writer in idle:
            writer.close()
        await server.stop()
