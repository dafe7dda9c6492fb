"""A real Prometheus (Debian's `prometheus` package; .ci/run installs it) scraping two bot processes
(`python -m bot --offline`, endpoints on): one polly_memory_rss_bytes series per instance comes
back through its HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.bot.offline_process import start_offline

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="the Prometheus server is not installed (.ci/run installs it)"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


def wait_for(check, what: str, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {seconds:g} s")


def start_bot(tmp_path, name: str, port: int) -> subprocess.Popen[str]:
    database = f"sqlite+aiosqlite:///{tmp_path / name}.db"
    return start_offline(
        tmp_path, stdout=subprocess.DEVNULL, DATABASE_URL=database, HEALTH_PORT=str(port), INSTANCE_NAME=name
    )


def test_prometheus_scrapes_one_series_per_instance(tmp_path):
    ports = {"eu-1": free_port(), "us-1": free_port()}
    bots = [start_bot(tmp_path, name, port) for name, port in ports.items()]
    prometheus = None
    try:
        for port in ports.values():
            wait_for(lambda port=port: get(f"http://127.0.0.1:{port}/metrics"), f"the bot on port {port}")
        web = free_port()
        config = tmp_path / "prometheus.yml"
        targets = json.dumps([f"127.0.0.1:{port}" for port in ports.values()])
        config.write_text(
            f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: polly\n"
            f"    static_configs:\n      - targets: {targets}\n"
        )
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        query = f"http://127.0.0.1:{web}/api/v1/query?query=polly_memory_rss_bytes"

        def both_series():
            body = get(query)
            if body is None:
                return None
            series = json.loads(body)["data"]["result"]
            return series if {s["metric"].get("polly_instance") for s in series} == set(ports) else None

        series = wait_for(both_series, "two polly_memory_rss_bytes series in Prometheus")
        assert len(series) == 2
        assert all(float(s["value"][1]) > 10 * 1024 * 1024 for s in series)  # real RSS, in bytes
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        for bot in bots:
            try:
                bot.communicate(":quit\n", timeout=60)
            except subprocess.TimeoutExpired:
                bot.kill()
