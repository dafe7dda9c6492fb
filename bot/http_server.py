"""A small HTTP/1.1 server on the bot's event loop for the health and metrics endpoints.

Why not aiohttp.web: importing it adds 1.9-2.2 MiB of RSS to the bot (measured in
`python -m benchmarks`), for three GET routes. This server answers GET and HEAD, one request per
connection (`Connection: close`), and refuses what it does not need with a status, never a
traceback: request heads over 16 KiB or 100 headers (431), anything but GET/HEAD (405), a head
not complete within 10 s (408), unknown paths (404).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
READ_TIMEOUT_S = 10.0


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
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); return the port bound. OSError if it cannot."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD_BYTES)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

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
