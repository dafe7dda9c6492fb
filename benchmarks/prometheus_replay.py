"""The shipped Prometheus rules judged on the alert-quality traces, through `promtool test rules`.

Each trace becomes the series the bot would export (`polly_memory_rss_bytes`, the limit, the
percent used, `process_start_time_seconds` starting over at each restart), one sample a minute.
The test file expects no alert at every `step` minutes; promtool prints each expectation that
failed with the alerts it got, which is what is counted: the first minute each alert was seen.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks._harness import ROOT
from benchmarks.alert_traces import Trace

RULES = ROOT / "deploy" / "prometheus" / "polly-memory.rules.yml"
ALERTS = ("PollyMemoryHigh", "PollyMemoryCritical", "PollyMemoryLeakTrend", "PollyMemoryGrowthBetweenCheckpoints")
MIB = 1024 * 1024
FAILED = re.compile(r"alertname: (\w+), time: ([0-9dhms]+),")


def available() -> bool:
    return shutil.which("promtool") is not None


def _minutes(text: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([dhms])", text):
        total += int(amount) * {"d": 1440, "h": 60, "m": 1, "s": 0}[unit]
    return total


def _series(name: str, labels: str, values: list[float]) -> str:
    return f"      - series: '{name}{{{labels}}}'\n        values: '{' '.join(f'{v:.0f}' for v in values)}'\n"


def _test_file(trace: Trace, step: int, start: int) -> str:
    rss = [v * MIB for v in trace.rss_mib]
    limit = trace.limit_mib * MIB
    restarts = sorted(trace.restarts)
    started = [max(r for r in restarts if r <= minute) * 60 for minute in range(len(rss))]
    labels = 'job="polly", instance="bot:9100"'
    own = labels + ', polly_instance="bot"'
    text = f"rule_files:\n  - {RULES}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
    text += _series("polly_memory_rss_bytes", own, rss)
    text += _series(
        "polly_memory_limit_bytes", own + ', kind="effective", source="MEMORY_LIMIT_MB"', [limit] * len(rss)
    )
    text += _series("polly_memory_limit_used_percent", own, [100 * v / limit for v in rss])
    text += _series("process_start_time_seconds", labels, [float(s) for s in started])
    text += "    alert_rule_test:\n"
    for minute in range(start, len(rss), step):
        for alert in ALERTS:
            text += f"      - eval_time: {minute}m\n        alertname: {alert}\n        exp_alerts: []\n"
    return text


def alerts_seen(trace: Trace, step: int = 10, start: int = 0) -> list[tuple[int, str]]:
    """(minute, alert name) of each alert promtool saw firing, first sighting of each episode."""
    with tempfile.TemporaryDirectory(prefix="polly-promtool-") as folder:
        path = Path(folder) / "replay.test.yml"
        path.write_text(_test_file(trace, step, start))
        done = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=600)
        out = done.stdout + done.stderr  # promtool writes the failures to stderr
    seen = sorted((_minutes(time), name) for name, time in FAILED.findall(out))
    episodes: list[tuple[int, str]] = []
    last: dict[str, int] = {}
    for minute, name in seen:
        if minute - last.get(name, -(10**9)) > step:
            episodes.append((minute, name))
        last[name] = minute
    return episodes
