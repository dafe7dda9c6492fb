"""Real HTTP requests to the health server running inside the bot under SimCord."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import poll_checks as bt
from polly.alerts import Rule
from polly.ext.cog import memory_cog
from polly.ext.health import HealthServer, HealthServerError
from polly.formatting import MIB, format_bytes
from tests.cogs.helpers import add_ops_guild, reply_text
from tests.conftest import STATS_KEYS
from tests.settings import make_settings

TOKEN = "s3cret-health-token"


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(tmp_path, health_port=0, metrics_instance="shard-7")


def url(bot, path: str) -> str:
    return f"http://127.0.0.1:{memory_cog(bot).health_server.port}{path}"


async def get(bot, path: str, headers=None) -> tuple[int, str, dict]:
    async with aiohttp.ClientSession() as session, session.get(url(bot, path), headers=headers) as response:
        return response.status, await response.text(), dict(response.headers)


def metric_samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def test_health_is_200_while_connected_with_a_small_json_body(simcord_env, simcord_bot):
    status, body, _ = await get(simcord_bot, "/health")
    assert status == 200
    assert '"status": "ok"' in body and '"gateway_connected": true' in body and "loop_lag_ms" in body


async def test_health_is_503_when_the_loop_lag_bound_is_exceeded(simcord_env, simcord_bot, monkeypatch):
    server = memory_cog(simcord_bot).health_server
    monkeypatch.setattr(server, "settings", replace(server.settings, health_max_loop_lag_ms=1e-9))
    status, body, _ = await get(simcord_bot, "/health")
    assert status == 503 and "event loop lag" in body and '"status": "unhealthy"' in body


async def test_health_memory_renders_the_same_sample_as_mem_stats(simcord_env, simcord_bot):
    _, channel, operator = add_ops_guild(simcord_env, simcord_bot)
    stats_text = reply_text(await operator.slash(channel, "mem stats"))
    sample = memory_cog(simcord_bot).monitor.latest

    async with aiohttp.ClientSession() as session:
        async with session.get(url(simcord_bot, "/health/memory")) as response:
            assert response.status == 200
            data = await response.json()
        async with session.get(url(simcord_bot, "/metrics")) as response:
            metrics = metric_samples(await response.text())

    assert data["status"] == "healthy" and data["alerts_firing"] == []
    assert set(STATS_KEYS) <= set(data)
    assert data["timestamp"] == sample.at.isoformat()
    assert data["rss"] == round(sample.rss / MIB, 1)
    assert format_bytes(sample.rss) in stats_text
    assert metrics["polly_memory_rss_bytes"][0].value == sample.rss
    assert metrics["polly_memory_limit_bytes"][0].labels["source"] == sample.limit_source
    # One breakdown, the same in both: the latest sample completed once, its parts adding up to RSS.
    breakdown = memory_cog(simcord_bot).monitor.latest.breakdown
    assert breakdown is not None and breakdown.rss == sample.rss
    parts = {e.labels["part"]: e.value for e in metrics["polly_memory_breakdown_bytes"]}
    assert parts == {p.name: p.bytes for p in breakdown.parts if p.bytes is not None}
    assert set(parts) >= {"python_objects", "file_mapped", "other"} and sum(parts.values()) <= sample.rss
    assert data["breakdown"]["parts"]["python_objects"] == round(parts["python_objects"] / MIB, 1)
    assert data["breakdown"]["verdict"] and data["breakdown"]["python"] == "pymalloc"


async def test_health_memory_is_warning_while_an_alert_fires_and_503_when_critical(simcord_env, simcord_bot):
    engine = memory_cog(simcord_bot).cycle.engine
    engine.set_threshold("for_checks", 1)
    engine.set_threshold("hysteresis_percent", 0)
    engine.set_threshold("dict_fill_percent", 0.05)  # one entry in a 1,000-entry structure is above
    bt.record_failure(1, "cached_channel")
    await simcord_env.advance_time(60)
    try:
        status, body, _ = await get(simcord_bot, "/health/memory")
        assert status == 200 and '"status": "warning"' in body and "message_fetch_failures" in body
        cycle = memory_cog(simcord_bot).cycle
        cycle.settings = replace(cycle.settings, alert_critical_memory_percent=0.0001)
        status, body, _ = await get(simcord_bot, "/health/memory")
        assert status == 503 and '"status": "critical"' in body
    finally:
        bt.message_fetch_failures.clear()


async def test_metrics_parse_with_names_and_labels(simcord_env, simcord_bot):
    memory_cog(simcord_bot).cycle.engine.set_threshold("for_checks", 1)
    memory_cog(simcord_bot).cycle.engine.set_threshold("hysteresis_percent", 0)
    memory_cog(simcord_bot).cycle.engine.set_threshold("dict_fill_percent", 0.05)
    bt.record_failure(1, "cached_channel")
    await simcord_env.advance_time(60)
    try:
        status, text, headers = await get(simcord_bot, "/metrics")
    finally:
        bt.message_fetch_failures.clear()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = metric_samples(text)
    for name in (
        "polly_memory_rss_bytes",
        "polly_memory_uss_bytes",
        "polly_memory_limit_bytes",
        "polly_memory_limit_used_percent",
        "polly_tracked_structure_size",
        "polly_tracked_structure_limit",
        "polly_db_pool_checked_out",
        "polly_db_pool_pool_size",
        "polly_db_pool_overflow",
        "polly_db_pool_checkouts_total",
        "polly_db_pool_timeouts_total",
        "polly_gc_collections_total",
        "polly_event_loop_lag_seconds",
        "polly_monitor_tick_errors_total",
        "polly_alerts_firing",
        "process_resident_memory_bytes",
        "polly_discord_cache_entries",
        "polly_tracked_structure_estimated_bytes",
        "polly_memory_breakdown_bytes",
    ):
        assert name in samples, name
    for name, entries in samples.items():
        if name.startswith("polly_"):
            assert all(e.labels.get("polly_instance") == "shard-7" for e in entries), name
            assert not {"guild", "guild_id", "user", "user_id", "channel", "channel_id"} & set(entries[0].labels)
    structures = {e.labels["structure"]: e.value for e in samples["polly_tracked_structure_size"]}
    assert structures["message_fetch_failures"] == 1
    ages = {e.labels["structure"]: e.value for e in samples["polly_tracked_structure_oldest_age_seconds"]}
    assert ages["message_fetch_failures"] == 60  # recorded, then one 60 s tick of the simulated clock
    caches = {e.labels["cache"]: e.value for e in samples["polly_discord_cache_entries"]}
    assert {"guilds", "channels", "members", "users", "messages"} <= set(caches)
    assert all(set(e.labels) == {"polly_instance", "cache"} for e in samples["polly_discord_cache_entries"])
    firing = {e.labels["rule"]: e.value for e in samples["polly_alerts_firing"]}
    assert set(firing) == {r.value for r in Rule}
    assert firing["structure_fill"] >= 1  # message_fetch_failures, and any other structure above 0.05 %


class TestToken:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, health_port=0, health_token=TOKEN)

    @pytest.mark.parametrize("path", ["/health", "/health/memory", "/metrics"])
    async def test_token_is_required_on_every_endpoint(self, simcord_env, simcord_bot, path):
        assert (await get(simcord_bot, path))[0] == 401
        assert (await get(simcord_bot, path, {"Authorization": "Bearer wrong"}))[0] == 401
        assert (await get(simcord_bot, path, {"Authorization": TOKEN}))[0] == 401  # no scheme
        status, body, _ = await get(simcord_bot, path, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        assert TOKEN not in body


async def test_server_stops_on_shutdown_and_frees_the_port(simcord_env, simcord_bot):
    port = memory_cog(simcord_bot).health_server.port
    await simcord_bot.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free again
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/health")


async def test_a_port_in_use_is_a_clear_start_up_error(simcord_env, simcord_bot, tmp_path):
    cog = memory_cog(simcord_bot)
    taken = cog.health_server.port
    second = HealthServer(simcord_bot, cog.layer, {})
    second.settings = replace(second.settings, health_port=taken)
    with pytest.raises(HealthServerError, match=f"HEALTH_PORT={taken} on HEALTH_HOST=127.0.0.1 cannot be used"):
        await second.start()


async def test_health_is_503_while_the_gateway_is_down(simcord_env, simcord_bot, monkeypatch):
    monkeypatch.setattr(simcord_bot, "ws", None)  # what discord.py holds between connections
    status, body, _ = await get(simcord_bot, "/health")
    assert status == 503 and "gateway not connected" in body and '"gateway_connected": false' in body


class TestOpenToTheNetwork:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, health_port=0, health_host="0.0.0.0")

    async def test_endpoints_open_to_the_network_without_a_token_are_warned_about(
        self, simcord_env, simcord_bot, caplog
    ):
        server = memory_cog(simcord_bot).health_server
        await server.stop()
        with caplog.at_level(logging.WARNING, logger="polly.ext.health"):
            await server.start()  # as at start-up
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("open to the network without a token" in w and "HEALTH_TOKEN" in w for w in warnings)

    async def test_mem_stats_warns_that_the_endpoints_are_open(self, simcord_env, simcord_bot):
        _guild, channel, operator = add_ops_guild(simcord_env, simcord_bot)
        text = reply_text(await operator.slash(channel, "mem stats"))
        port = memory_cog(simcord_bot).health_server.port
        assert f"⚠ the health and metrics endpoints on 0.0.0.0:{port} are open to the network" in text


async def test_mem_stats_has_no_open_endpoints_warning_on_loopback(simcord_env, simcord_bot):
    _guild, channel, operator = add_ops_guild(simcord_env, simcord_bot)
    text = reply_text(await operator.slash(channel, "mem stats"))
    assert "running;" in text and "⚠" not in text


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False), ("db", False)],
)
def test_which_hosts_keep_the_endpoints_on_this_machine(host, loopback):
    from polly.config import is_loopback

    assert is_loopback(host) is loopback
