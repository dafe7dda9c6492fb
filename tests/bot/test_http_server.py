"""The endpoints' HTTP server, spoken to over raw sockets: odd and hostile requests get a status,
never a traceback, and the server keeps serving."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import http_server
from bot.http_server import HttpServer, Request, Response


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
    monkeypatch.setattr(http_server, "READ_TIMEOUT_S", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: slow")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert status_of(answer) == 408
