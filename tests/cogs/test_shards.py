"""A sharded Polly (SHARD_COUNT, SHARD_IDS) under SimCord: per-shard figures in /mem stats,
/metrics and /health; the instance named on alerts."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from polly.config import load_settings
from polly.ext.cog import memory_cog
from polly.models import alert_events
from tests.cogs.helpers import add_ops_guild, reply_text
from tests.settings import make_settings


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(tmp_path, shard_count=4, shard_ids="1,3", health_port=0, instance_name="eu-1")


async def get(bot, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{memory_cog(bot).health_server.port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_the_sharded_bot_reports_each_of_its_shards(simcord_env, simcord_bot):
    assert type(simcord_bot).__name__ == "ShardedPollyBot" and simcord_bot.shard_ids == [1, 3]
    _guild, ops, operator = add_ops_guild(simcord_env, simcord_bot, shard_id=1)  # a guild of this process
    for name in ("a", "b"):
        simcord_env.create_guild(name, shard_id=3)
    text = reply_text(await operator.slash(ops, "mem stats"))
    assert "Gateway shards" in text and "shard 1: ✅" in text and "shard 3: ✅" in text
    assert "instance eu-1" in text

    await simcord_env.advance_time(60)  # a tick: the sample carries the shards
    status, body = await get(simcord_bot, "/metrics")
    assert status == 200
    samples = {(s.name, s.labels.get("shard")): s for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples[("polly_discord_shard_connected", "1")].value == 1
    assert samples[("polly_discord_shard_connected", "3")].value == 1
    assert samples[("polly_discord_shard_guilds", "3")].value >= 2
    assert samples[("polly_discord_shard_latency_seconds", "1")].labels["polly_instance"] == "eu-1"
    assert ("polly_discord_shard_connected", "0") not in samples  # not this process's shard


async def test_health_names_a_shard_down_longer_than_the_grace(simcord_env, simcord_bot):
    assert (await get(simcord_bot, "/health"))[0] == 200
    await simcord_bot.get_shard(3).disconnect()
    status, body = await get(simcord_bot, "/health")
    assert status == 200  # reconnecting is normal, for HEALTH_SHARD_GRACE_SECONDS
    await simcord_env.advance_time(61)
    status, body = await get(simcord_bot, "/health")
    assert status == 503 and "shard 3 disconnected for 61 s (grace 60 s)" in body
    await simcord_bot.get_shard(3).reconnect()
    await simcord_env.settle()
    assert (await get(simcord_bot, "/health"))[0] == 200


class TestInstanceOnAlerts:
    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(
            tmp_path, instance_name="eu-1", alert_hysteresis_percent=0, alert_memory_percent=0.1, alert_charts=False
        )

    async def test_alert_messages_and_their_history_name_the_instance(self, simcord_env, simcord_bot):
        _guild, ops, operator = add_ops_guild(simcord_env, simcord_bot)
        await operator.slash(ops, "mem alerts", channel=ops)
        await simcord_env.advance_time(4 * 60)
        fired = [m for m in ops.history() if m.embeds and "Memory above threshold" in (m.embeds[0].title or "")]
        assert fired and fired[0].embeds[0].footer.text == "instance eu-1"
        async with simcord_bot.db.transaction() as conn:
            instances = set(await conn.scalars(select(alert_events.c.instance)))
        assert instances == {"eu-1"}


def test_the_instance_name_defaults_to_the_host_and_first_shard(monkeypatch, tmp_path):
    monkeypatch.setattr("socket.gethostname", lambda: "bot-host.example.org")
    assert make_settings(tmp_path).instance() == "bot-host"
    assert make_settings(tmp_path, shard_count=4, shard_ids="2,3").instance() == "bot-host-shard2"
    assert make_settings(tmp_path, metrics_instance="legacy").instance() == "legacy"  # the retired alias
    assert make_settings(tmp_path, metrics_instance="legacy", instance_name="eu-1").instance() == "eu-1"
    assert load_settings(env_file=None, environ={"SHARD_COUNT": "2"}).shards() == [0, 1]
