"""HTTP health and metrics endpoints on the bot's own event loop (polly/ext/http_server.py).

GET /health          liveness: gateway connected and event-loop lag under HEALTH_MAX_LOOP_LAG_MS
GET /health/memory   get_memory_stats() of the monitor's latest sample plus a status
GET /metrics         Prometheus text exposition of the same sample and the process collector
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from polly import clock
from polly.ext.cache_census import shard_states
from polly.ext.http_server import HttpServer, Request, Response
from polly.metrics import CONTENT_TYPE, MetricsRenderer
from polly.samples import measure_loop_lag
from polly.shards import down_too_long
from polly.startup_errors import StartupError

if TYPE_CHECKING:
    from datetime import datetime

    from discord.ext import commands

    from polly.memory_layer import MemoryLayer

log = logging.getLogger(__name__)


class HealthServerError(StartupError):
    """The health server could not start; the message names the setting to change."""


class HealthServer:
    """Started when the memory cog loads (HEALTH_PORT set), stopped when it unloads."""

    def __init__(self, bot: commands.Bot, layer: MemoryLayer, shard_down_since: dict[int, datetime]) -> None:
        self.bot = bot
        self.layer = layer
        self.shard_down_since = shard_down_since
        self.settings = layer.settings
        token = self.settings.health_token
        self._token = token.get_secret_value().encode() if token is not None else None
        self._metrics = MetricsRenderer(layer.cycle, self.settings.instance())
        self._server = HttpServer(
            {"/health": self.health, "/health/memory": self.health_memory, "/metrics": self.metrics}, self._auth
        )
        self.port: int | None = None

    async def start(self) -> None:
        host, port = self.settings.health_host, self.settings.health_port
        assert port is not None, "the endpoints start only with HEALTH_PORT set"
        try:
            self.port = await self._server.start(host, port)
        except OSError as exc:
            raise HealthServerError(
                f"{self.settings.variable('health_port')}={port} on {self.settings.variable('health_host')}={host} "
                f"cannot be used ({exc.strerror or exc}): "
                "choose another port or stop what is listening there"
            ) from None
        log.info("Health endpoints on http://%s:%s (/health, /health/memory, /metrics)", host, self.port)
        exposure = self.settings.endpoints_exposure(self.port)
        if exposure:
            log.warning("%s%s", exposure[0].upper(), exposure[1:])

    async def stop(self) -> None:
        if self.port is not None:
            await self._server.stop()
            self.port = None
            log.info("Health endpoints stopped")

    def _auth(self, request: Request) -> Response | None:
        """None lets the request through; a 401 when HEALTH_TOKEN is set and not given."""
        if self._token is None:
            return None
        header = request.headers.get("authorization", "").encode("latin-1")
        given = header.removeprefix(b"Bearer ") if header.startswith(b"Bearer ") else b""
        if hmac.compare_digest(given, self._token):
            return None
        return Response.json(
            {"error": "missing or wrong bearer token (Authorization: Bearer <HEALTH_TOKEN>)"},
            401,
            {"WWW-Authenticate": "Bearer"},
        )

    async def health(self, _request: Request) -> Response:
        lag_ms = await measure_loop_lag()
        shards = shard_states(self.bot, self.shard_down_since)
        reasons = []
        if self.bot.shard_count is None:  # one connection: down is down
            connected = shards[0].connected
            if not connected:
                reasons.append("gateway not connected")
        else:  # a shard reconnecting is normal: unhealthy after HEALTH_SHARD_GRACE_SECONDS
            connected = all(s.connected for s in shards)
            grace = self.settings.health_shard_grace_seconds
            reasons += down_too_long(shards, grace, clock.now())
        if lag_ms > self.settings.health_max_loop_lag_ms:
            reasons.append(f"event loop lag {lag_ms:.0f} ms above {self.settings.health_max_loop_lag_ms:g} ms")
        guard = self.layer.db.file_guard
        problem = guard.problem() if guard is not None else None
        if guard is not None and problem is not None:
            reasons.append(guard.explain(problem))
        body = {
            "status": "ok" if not reasons else "unhealthy",
            "gateway_connected": connected,
            "shards": {str(s.shard): {"connected": s.connected, "latency_s": s.latency_s} for s in shards},
            "loop_lag_ms": round(lag_ms, 3),
            "reasons": reasons,
        }
        return Response.json(body, 200 if not reasons else 503)

    async def health_memory(self, _request: Request) -> Response:
        cycle = self.layer.cycle
        stats = self.layer.monitor.stats_dict(cycle.engine.thresholds.memory_percent)
        status = cycle.memory_status(self.layer.monitor.latest or self.layer.monitor.sample())
        stats["status"] = status
        stats["alerts_firing"] = [
            {"rule": a.rule.value, "subject": a.subject, "value": a.value, "threshold": a.threshold}
            for a in cycle.engine.active()
        ]
        return Response.json(stats, 503 if status == "critical" else 200)

    async def metrics(self, _request: Request) -> Response:
        return Response(200, self._metrics.render(), CONTENT_TYPE)
