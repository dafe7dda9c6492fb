"""HTTP health and metrics endpoints on the bot's own event loop (aiohttp, which discord.py brings).

GET /health          liveness: gateway connected and event-loop lag under HEALTH_MAX_LOOP_LAG_MS
GET /health/memory   get_memory_stats() of the monitor's latest sample plus a status
GET /metrics         Prometheus text exposition of the same sample and the process collector
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.app import StartupError
from polly.memory_optimizer import measure_loop_lag
from polly.metrics import CONTENT_TYPE, MetricsRenderer

if TYPE_CHECKING:
    from bot.app import PollyBot

log = logging.getLogger(__name__)


class HealthServerError(StartupError):
    """The health server could not start; the message names the setting to change."""


class HealthServer:
    """Started in the bot's setup hook, stopped when the bot closes."""

    def __init__(self, bot: PollyBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        token = self.settings.health_token
        self._token = token.get_secret_value().encode() if token is not None else None
        self._metrics = MetricsRenderer(bot.cycle, self.settings.metrics_instance)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/memory", self.health_memory)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def start(self) -> None:
        host, port = self.settings.health_host, self.settings.health_port
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HealthServerError(
                f"HEALTH_PORT={port} on HEALTH_HOST={host} cannot be used ({exc.strerror or exc}): "
                "choose another port or stop what is listening there"
            ) from None
        self._runner = runner
        server = site._server  # the bound socket tells the real port when HEALTH_PORT=0
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("Health endpoints on http://%s:%s (/health, /health/memory, /metrics)", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("Health endpoints stopped")

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._token is not None:
            header = request.headers.get("Authorization", "")
            given = header.removeprefix("Bearer ").encode() if header.startswith("Bearer ") else b""
            if not hmac.compare_digest(given, self._token):
                return web.json_response(
                    {"error": "missing or wrong bearer token (Authorization: Bearer <HEALTH_TOKEN>)"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    async def health(self, _request: web.Request) -> web.Response:
        lag_ms = await measure_loop_lag()
        ws = self.bot.ws  # None until connected; `open` goes False when the gateway drops
        connected = self.bot.is_ready() and not self.bot.is_closed() and ws is not None and bool(ws.open)
        reasons = []
        if not connected:
            reasons.append("gateway not connected")
        if lag_ms > self.settings.health_max_loop_lag_ms:
            reasons.append(f"event loop lag {lag_ms:.0f} ms above {self.settings.health_max_loop_lag_ms:g} ms")
        body = {
            "status": "ok" if not reasons else "unhealthy",
            "gateway_connected": connected,
            "loop_lag_ms": round(lag_ms, 3),
            "reasons": reasons,
        }
        return web.json_response(body, status=200 if not reasons else 503)

    async def health_memory(self, _request: web.Request) -> web.Response:
        cycle = self.bot.cycle
        stats = self.bot.monitor.stats_dict()
        status = cycle.memory_status(self.bot.monitor.latest or self.bot.monitor.sample())
        stats["status"] = status
        stats["alerts_firing"] = [
            {"rule": a.rule.value, "subject": a.subject, "value": a.value, "threshold": a.threshold}
            for a in cycle.engine.active()
        ]
        return web.json_response(stats, status=503 if status == "critical" else 200)

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})
