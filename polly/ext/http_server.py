"""A small HTTP/1.1 server on the bot's event loop for the health and metrics endpoints.

Why not aiohttp.web: importing it adds 1.9-2.2 MiB of RSS to the bot (measured in
`python -m benchmarks`), for three GET routes. This server answers GET and HEAD, one request per
connection (`Connection: close`), and refuses what it does not need with a status, never a
traceback: request heads over 16 KiB or 100 headers (431), anything but GET/HEAD (405), a head
not complete within 10 s (408), unknown paths (404). At most MAX_IN_FLIGHT connections are served
at once, the rest wait in the kernel's queue, so a burst of scrapers cannot stall the bot's loop
(`python -m benchmarks --only scrape-load`). The price: 64 clients that never finish their request
hold the endpoints for READ_TIMEOUT_S, which is why they belong on loopback or behind HEALTH_TOKEN.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
READ_TIMEOUT_S = 10.0
# Connections the kernel queues until they are accepted: asyncio's default of 100 drops the SYNs
# of a burst of scrapers (each then waits a second or more to retry).
BACKLOG = 1024
# Connections served at once; the rest wait in the kernel's queue. Serving one costs the loop about
# 0.1-0.3 ms in all: a thousand at once stalled every other task of the bot for 70-90 ms.
MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names; values decoded as latin-1, as HTTP allows


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data).encode(), "application/json; charset=utf-8", headers or {})


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


def parse_head(head: bytes) -> Request:
    """The request line and headers of one request head (without the final blank line)."""
    lines = head.split(b"\r\n")
    try:
        method, target, version = lines[0].decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(HTTPStatus.BAD_REQUEST) from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED)
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise BadRequest(HTTPStatus.BAD_REQUEST)
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return Request(method, target.split("?", 1)[0], headers)


class HttpServer:
    """Routes GET paths to handlers; `guard` may answer first (authentication)."""

    def __init__(
        self, routes: Mapping[str, Handler], guard: Callable[[Request], Response | None] | None = None
    ) -> None:
        self.routes = dict(routes)
        self.guard = guard
        self._sockets: list[socket.socket] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._accepting = False

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); return the port bound. OSError if it cannot."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        bound = port
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):  # every address of a host name
                listening = socket.socket(family, kind, proto)
                self._sockets.append(listening)
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                listening.bind((address[0], bound, *address[2:]))
                bound = listening.getsockname()[1]  # port 0: the same free port on every address
                listening.listen(BACKLOG)
                listening.setblocking(False)
        except OSError:
            self._close_sockets()
            raise
        self._accepting = False
        self._resume_accepting()
        return bound

    async def stop(self) -> None:
        self._pause_accepting()
        self._close_sockets()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        self._connections = set()

    def _close_sockets(self) -> None:
        for listening in self._sockets:
            listening.close()
        self._sockets = []

    # Accepting from a reader callback (not a task waiting on sock_accept) pauses cleanly: while
    # MAX_IN_FLIGHT connections are served, the listening sockets are not watched at all.
    def _resume_accepting(self) -> None:
        if self._accepting or not self._sockets:
            return
        loop = asyncio.get_running_loop()
        for listening in self._sockets:
            loop.add_reader(listening.fileno(), self._accept, listening)
        self._accepting = True

    def _pause_accepting(self) -> None:
        if not self._accepting:
            return
        loop = asyncio.get_running_loop()
        for listening in self._sockets:
            loop.remove_reader(listening.fileno())
        self._accepting = False

    def _accept(self, listening: socket.socket) -> None:
        while len(self._connections) < MAX_IN_FLIGHT:
            try:
                connection, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: wait for a connection to end
                log.debug("Could not accept a connection: %s", exc)
                break
            connection.setblocking(False)
            task = asyncio.get_running_loop().create_task(self._connection(connection))
            self._connections.add(task)
            task.add_done_callback(self._connection_ended)
        self._pause_accepting()
        if not self._connections:  # nothing will end to resume it: retry shortly
            asyncio.get_running_loop().call_later(0.1, self._resume_accepting)

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self._resume_accepting()

    async def _connection(self, connection: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=connection, limit=MAX_HEAD_BYTES)
        except OSError:
            connection.close()
            return
        await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = "GET"
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
                request = parse_head(head[:-4])
                method = request.method
                response = await self._respond(request)
            except BadRequest as exc:
                response = _status(exc.status)
            except asyncio.LimitOverrunError:
                response = _status(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            except TimeoutError:
                response = _status(HTTPStatus.REQUEST_TIMEOUT)
            except asyncio.IncompleteReadError:
                return  # the client went away before finishing its request
            await _write(writer, response, head_only=method == "HEAD")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _status(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})
        handler = self.routes.get(request.path)
        if handler is None:
            return _status(HTTPStatus.NOT_FOUND)
        refused = self.guard(request) if self.guard is not None else None
        if refused is not None:
            return refused
        try:
            return await handler(request)
        except Exception:
            log.exception("The handler of %s failed", request.path)
            return _status(HTTPStatus.INTERNAL_SERVER_ERROR)


def _status(status: HTTPStatus, headers: Mapping[str, str] | None = None) -> Response:
    return Response.json({"error": status.phrase}, status.value, headers)


async def _write(writer: asyncio.StreamWriter, response: Response, *, head_only: bool) -> None:
    reason = HTTPStatus(response.status).phrase
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(response.body)
    await writer.drain()
