"""deploy/grafana/polly-memory.json: valid dashboard JSON, valid PromQL (promtool), and every metric
it queries is one a real bot exports (a real /metrics scrape of a sharded bot under SimCord)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from polly.ext.cog import memory_cog
from tests.cogs.helpers import add_ops_guild
from tests.conftest import REPO_ROOT
from tests.settings import make_settings

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "polly-memory.json"
METRIC = re.compile(r"\b((?:polly|process)_[a-z_]+)\b")
LABELS = re.compile(r"\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)")  # matchers and groupings name labels


def metric_names(expr: str) -> set[str]:
    return set(METRIC.findall(LABELS.sub(" ", expr)))


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_is_grafana_json_with_an_instance_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "polly_instance" in variables["instance"]["query"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["targets"]
        assert all(t["expr"] and t["refId"] for t in panel["targets"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (.ci/run installs it)")
def test_every_expression_is_valid_promql(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": []}]}
    for i, expr in enumerate(expressions()):
        concrete = expr.replace("$instance", ".*").replace("$job", ".*")
        rules["groups"][0]["rules"].append({"record": f"dashboard:expr_{i}", "expr": concrete})
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))  # YAML is a superset of JSON
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(tmp_path, health_port=0, shard_count=2)


async def test_every_metric_the_dashboard_queries_is_exported(simcord_env, simcord_bot):
    add_ops_guild(simcord_env, simcord_bot, shard_id=0)
    await simcord_env.advance_time(660)  # ticks: samples enough for a trend (10 min), pool use, profiled work
    url = f"http://127.0.0.1:{memory_cog(simcord_bot).health_server.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        exported = {s.name for f in text_string_to_metric_families(await response.text()) for s in f.samples}
    wanted = set().union(*map(metric_names, expressions()))
    assert wanted and not wanted - exported, sorted(wanted - exported)
