"""A small HTTP/1.1 server on the bot's event loop for the health and metrics endpoints.

Why not aiohttp.web: importing it adds 1.9-2.2 MiB of RSS to the bot (measured in
`python -m benchmarks`), for three GET routes. This server answers GET and HEAD, one request per
connection (`Connection: close`), and refuses what it does not need with a status, never a
traceback: request heads over 16 KiB or 100 headers (431), anything but GET/HEAD (405), a head
not complete within HEAD_TIMEOUT_S (408), unknown paths (404).

Slow or idle clients cannot keep a scraper out, and a burst cannot stall the bot's loop: until its
head is complete a connection is a protocol object collecting bytes (no task, no slot); when
MAX_CONNECTIONS are open the oldest unfinished head is dropped for the newcomer; complete requests
are started SERVE_BATCH per turn of the loop and take one of MAX_IN_FLIGHT slots
(`python -m benchmarks --only scrape-load`)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import field
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from polly.records import record

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
# A scraper (Prometheus, curl, a kubelet probe) sends its whole head at once, right after connecting:
# measured under 1 ms on loopback. Five seconds leave room for a slow network, not for a slow client.
HEAD_TIMEOUT_S = 5.0
# Connections open at once; beyond it the oldest unfinished head is dropped for the newcomer.
MAX_CONNECTIONS = 1024
ACCEPT_BATCH = 16  # connections accepted per turn of the event loop
# Connections the kernel queues until they are accepted: asyncio's default of 100 drops the SYNs
# of a burst of scrapers (each then waits a second or more to retry).
BACKLOG = 1024
# Complete requests served at once; the rest wait for a slot. Serving one costs the loop about
# 0.1-0.3 ms in all: a thousand at once stalled every other task of the bot for 70-90 ms.
MAX_IN_FLIGHT = 64
# Complete requests started per turn of the event loop. Scrapers that connected together send
# their heads together: one turn read 753 of them, and serving them all in the next stalled the
# loop for ~50 ms (a 404 costs ~70 µs with its write and close on loopback).
SERVE_BATCH = 16
# Unfinished heads whose client gave up, closed per turn of the loop: when an attack or a crowd of
# idle clients ends, hundreds hang up in one turn (500 closed in one turn: ~8 ms of the loop).
CLOSE_BATCH = 32


@record
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names; values decoded as latin-1, as HTTP allows


@record
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


T = TypeVar("T")


class _PerTurn(Generic[T]):
    """Items handled a few per turn of the event loop by one task, so a crowd that arrives in one
    turn does not stall every other task of the bot in the next. `batch` is read at each turn."""

    def __init__(self, handle: Callable[[T], None], batch: Callable[[], int]) -> None:
        self._handle = handle
        self._batch = batch
        self._items: collections.deque[T] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._items:
                for _ in range(min(self._batch(), len(self._items))):
                    self._handle(self._items.popleft())
                await asyncio.sleep(0)  # one turn of the loop
        finally:
            self._task = None

    async def stop(self) -> None:
        """Stop handling; the items not handled yet are forgotten."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._items.clear()


class _Connection(asyncio.Protocol):
    """One client connection until its request head is complete: bytes are only collected here
    (no task, no slot); a complete head is handed to the server, an overlong or late one answered."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # A little spread, so clients that connected together do not all time out in one turn.
        spread = HEAD_TIMEOUT_S * random.random() * 0.2
        self.deadline = asyncio.get_running_loop().call_later(HEAD_TIMEOUT_S + spread, self._late)
        self.server._opened(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0 and end <= MAX_HEAD_BYTES:
            self._head_done()
            self.server._request(self, bytes(self.buffer[:end]))
        elif len(self.buffer) > MAX_HEAD_BYTES:
            self._head_done()
            self.answer(_status(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE))

    def _head_done(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()  # one request per connection: the rest is not read
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.server._head_complete(self)

    def eof_received(self) -> bool:
        # Only a connection still reading its head gets here: its client gave up. Closed by the
        # server a batch per turn; its reader is removed now (keeping it open returns True).
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.server._gave_up(self)
        return True

    def _late(self) -> None:
        self.deadline = None
        self.server._head_complete(self)
        self.answer(_status(HTTPStatus.REQUEST_TIMEOUT))

    def answer(self, response: Response, *, head_only: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_encode(response, head_only=head_only))
        self.transport.close()  # after what was written is sent

    def drop(self) -> None:
        """Close without an answer (the oldest unfinished head, when the server is full)."""
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.server._closed(self)
        self.transport = None


class HttpServer:
    """Routes GET paths to handlers; `guard` may answer first (authentication).

    Slow clients cannot keep a scraper out: a connection costs a few hundred bytes until its head
    is complete (no task, no slot), must complete it within HEAD_TIMEOUT_S, and when MAX_CONNECTIONS
    are open the oldest unfinished head is dropped for the newcomer. Only complete requests take one
    of MAX_IN_FLIGHT slots, started SERVE_BATCH per turn of the loop, so a burst of scrapers cannot
    stall the bot's loop either."""

    def __init__(
        self, routes: Mapping[str, Handler], guard: Callable[[Request], Response | None] | None = None
    ) -> None:
        self.routes = dict(routes)
        self.guard = guard
        self._sockets: list[socket.socket] = []
        self._waiting: collections.deque[socket.socket] = collections.deque()  # accepted, not adopted yet
        self._adopting: asyncio.Task[None] | None = None
        self._unfinished: dict[_Connection, None] = {}  # heads not complete yet, oldest first
        self._open: set[_Connection] = set()
        self._requests: set[asyncio.Task[None]] = set()
        self._starting = _PerTurn[tuple[_Connection, bytes]](self._start, lambda: SERVE_BATCH)
        self._closing = _PerTurn[_Connection](_Connection.drop, lambda: CLOSE_BATCH)
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); return the port bound. OSError if it cannot."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        bound = port
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):  # every address of a host name
                listening = socket.socket(family, kind, proto)
                sockets.append(listening)
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                listening.bind((address[0], bound, *address[2:]))
                bound = listening.getsockname()[1]  # port 0: the same free port on every address
                listening.listen(BACKLOG)
                listening.setblocking(False)
        except OSError:
            for listening in sockets:
                listening.close()
            raise
        self._sockets = sockets
        for listening in sockets:
            loop.add_reader(listening.fileno(), self._accept, listening)
        return bound

    # A burst of connections is taken in small batches, one per turn of the event loop, and made
    # into transports one at a time by one task: every other task of the bot runs in between.
    def _accept(self, listening: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # out of file descriptors: the kernel keeps it queued
                log.debug("Could not accept a connection: %s", exc)
                break
            connection.setblocking(False)
            self._waiting.append(connection)
        if self._waiting and self._adopting is None:
            self._adopting = asyncio.get_running_loop().create_task(self._adopt())

    async def _adopt(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                connection = self._waiting.popleft()
                try:
                    await loop.connect_accepted_socket(lambda: _Connection(self), connection)
                except OSError:
                    connection.close()
        finally:
            self._adopting = None

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for listening in self._sockets:
            loop.remove_reader(listening.fileno())
            listening.close()
        self._sockets = []
        if self._adopting is not None:
            self._adopting.cancel()
            await asyncio.gather(self._adopting, return_exceptions=True)
        while self._waiting:
            self._waiting.popleft().close()
        await self._starting.stop()  # their connections are dropped below
        await self._closing.stop()
        for connection in list(self._open):
            connection.drop()
        requests = list(self._requests)
        for task in requests:
            task.cancel()
        await asyncio.gather(*requests, return_exceptions=True)
        self._requests = set()

    @property
    def connections(self) -> int:
        return len(self._open)

    def _opened(self, connection: _Connection) -> None:
        self._open.add(connection)
        self._unfinished[connection] = None
        if len(self._open) > MAX_CONNECTIONS and self._unfinished:
            oldest = next(iter(self._unfinished))
            self._unfinished.pop(oldest)
            oldest.drop()

    def _head_complete(self, connection: _Connection) -> None:
        self._unfinished.pop(connection, None)

    def _closed(self, connection: _Connection) -> None:
        self._unfinished.pop(connection, None)
        self._open.discard(connection)

    def _request(self, connection: _Connection, head: bytes) -> None:
        self._starting.add((connection, head))

    def _start(self, request: tuple[_Connection, bytes]) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(*request))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def _gave_up(self, connection: _Connection) -> None:
        self._unfinished.pop(connection, None)
        self._closing.add(connection)

    async def _serve(self, connection: _Connection, head: bytes) -> None:
        method = "GET"
        try:
            request = parse_head(head)
            method = request.method
            async with self._slots:
                response = await self._respond(request)
        except BadRequest as exc:
            response = _status(exc.status)
        connection.answer(response, head_only=method == "HEAD")

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


def _encode(response: Response, *, head_only: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body
