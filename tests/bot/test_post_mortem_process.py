"""After a death, the next start says how the last run ended: real bot processes (`python -m bot
--offline`) on one SQLite file, killed with SIGKILL at the memory limit, stopped with :quit, and,
where the machine lets a test make a memory cgroup, killed by the kernel's OOM killer."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from polly.memory_limit import CgroupReader
from tests.bot.offline_process import Console

MIB = 1024 * 1024
LIMIT_MB = 130


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def start(tmp_path: Path, cgroup: Path | None = None, **settings: str) -> Console:
    database = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    console = Console(tmp_path, "bot", cgroup, DATABASE_URL=database, INSTANCE_NAME="bot-1", **settings)
    console.run("/mem pool", "Database pool")  # started: the previous run is judged by now
    return console


def ops_posts(console: Console) -> list[str]:
    """What this session's #ops channel holds (each post from its header on)."""
    said = console.run(":channel", "#ops:")
    return ["[#ops" + post for post in said.split("[#ops")[1:]]


def test_killed_at_the_limit_is_reported_once_as_likely_killed_and_a_clean_quit_as_nothing(tmp_path):
    first = start(tmp_path, MEMORY_LIMIT_MB=str(LIMIT_MB))
    try:
        for _ in range(20):  # leak until 97 % of MEMORY_LIMIT_MB, whatever this machine's baseline
            if rss_mib(first.child.pid) >= 0.97 * LIMIT_MB:
                break
            first.run(":leak-objects 20000", "LeakyWidget objects are now held")
        assert rss_mib(first.child.pid) >= 0.95 * LIMIT_MB
        first.advance(11)  # ten minutes of samples at the limit
        os.kill(first.child.pid, signal.SIGKILL)  # what the kernel or a supervisor does: no goodbye
        first.child.wait(timeout=30)
    finally:
        first.child.kill()

    second = start(tmp_path, MEMORY_LIMIT_MB=str(LIMIT_MB))
    try:
        second.advance(3)
        posts = ops_posts(second)
        reports = [p for p in posts if "Previous run:" in p]
        assert len(reports) == 1, posts
        (report,) = reports
        assert "💥 Previous run: Likely killed for memory" in report
        assert "no word from the kernel" in report and "% of the limit (ALERT_CRITICAL_MEMORY_PERCENT 95 %)" in report
        assert f"of the {LIMIT_MB:.1f} MiB limit (MEMORY_LIMIT_MB)" in report
        # (its chart is tested in tests/cogs/test_post_mortem.py: each process's simulated clock
        # starts at 2026-01-01 again, so here the dead run's samples are not in the chart's past)
        assert "reported · previous_run" in second.run("/mem alerts", "Memory alerts")
        assert "Likely killed for memory" in second.run("/mem stats", "Monitor")
        second.advance(3)  # delivered once: later ticks do not post it again
        assert len([p for p in ops_posts(second) if "Previous run:" in p]) == 1
        second.quit()  # a clean stop
        assert second.child.returncode == 0
    finally:
        second.child.kill()

    third = start(tmp_path, MEMORY_LIMIT_MB=str(LIMIT_MB))
    try:
        third.advance(2)
        assert not [p for p in ops_posts(third) if "Previous run:" in p]
        assert "Previous run" not in third.run("/mem stats", "Monitor")  # said only when there is news
    finally:
        third.quit()
        third.child.kill()


# ---------------------------------------------------------------- the kernel's own OOM kill


@pytest.fixture
def small_memory_cgroup() -> Iterator[Path]:
    """A memory cgroup nested in this process's own with a 200 MiB hard limit (cgroup v1, or v2 with
    the memory controller delegated); skipped, with the reason, where the machine does not allow it."""
    if os.geteuid() != 0:
        pytest.skip("making a memory cgroup needs root")
    own = CgroupReader().memory_dir()
    if own is None:
        pytest.skip("this process is in no memory cgroup")
    if own.version == 2 and "memory" not in (own.path / "cgroup.subtree_control").read_text():
        pytest.skip(f"cgroup v2 without the memory controller delegated below {own.path}")
    path = own.path / f"polly-oom-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup under {own.path}: {exc}")
    try:
        if own.version == 1:
            (path / "memory.limit_in_bytes").write_text(str(200 * MIB))
        else:
            (path / "memory.max").write_text(str(200 * MIB))
            (path / "memory.swap.max").write_text("0")
        yield path
    finally:
        for _ in range(50):  # the killed process leaves the cgroup as the kernel reaps it
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_killed_by_the_kernel_s_oom_killer_is_reported_with_the_kernel_s_counter(tmp_path, small_memory_cgroup):
    first = start(tmp_path, small_memory_cgroup)
    try:
        first.advance(1)  # a sample: its record holds the counter (0)
        for _ in range(40):  # about 9 MiB a step, until the kernel kills it at the cgroup's 200 MiB
            try:
                first.run(":leak-objects 20000", "LeakyWidget objects are now held", timeout=60)
            except AssertionError:
                break
        first.child.wait(timeout=30)
        assert first.child.returncode == -signal.SIGKILL, "the kernel's OOM killer did not act"
    finally:
        first.child.kill()

    second = start(tmp_path, small_memory_cgroup)  # restarted in the same cgroup, as a supervisor would
    try:
        second.advance(2)
        (report,) = [p for p in ops_posts(second) if "Previous run:" in p]
        assert "💥 Previous run: Killed for memory" in report
        assert "the kernel's OOM killer killed 1 process(es) of this cgroup" in report
        assert "oom_kill 0 → 1" in report and small_memory_cgroup.name in report
    finally:
        second.quit()
        second.child.kill()
