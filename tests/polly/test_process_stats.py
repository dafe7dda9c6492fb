"""The /proc reader: the same figures as psutil on the real process, fixture files, refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psutil
import pytest

from polly.formatting import MIB
from polly.process_stats import AccessDenied, LinuxProcess, PsutilProcess, current_process, process_rss
from tests.conftest import REPO_ROOT
from tests.opened_files import opened_files

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")


@linux_only
def test_linux_reader_matches_psutil_on_this_process():
    ours, theirs = LinuxProcess(), psutil.Process()
    keep = bytearray(8 * MIB)  # touched pages, so RSS is well above noise
    keep[::4096] = b"x" * len(keep[::4096])
    mine, full = ours.memory_full_info(), theirs.memory_full_info()
    assert abs(mine.rss - full.rss) < 2 * MIB and abs(mine.vms - full.vms) < 4 * MIB
    assert abs(mine.uss - full.uss) < 2 * MIB and abs(mine.pss - full.pss) < 2 * MIB
    assert mine.swap == full.swap
    assert ours.num_threads() == theirs.num_threads()
    assert abs(ours.num_fds() - theirs.num_fds()) <= 1
    assert abs(ours.create_time() - theirs.create_time()) < 0.05
    host, vm = ours.host_memory(), psutil.virtual_memory()
    assert host.total == vm.total and abs(host.available - vm.available) < 64 * MIB
    assert abs(host.percent - vm.percent) < 1
    del keep


@linux_only
def test_threads_and_descriptors_follow_the_process():
    ours = LinuxProcess()
    threads, fds = ours.num_threads(), ours.num_fds()
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    with open(__file__) as _a, open(__file__) as _b:
        assert ours.num_threads() == threads + 1
        assert ours.num_fds() == fds + 2
    stop.set()
    worker.join()


def test_figures_from_fixture_files(tmp_path):
    proc, root = tmp_path / "self", tmp_path
    (proc / "fd").mkdir(parents=True)
    for name in ("0", "1", "2"):
        (proc / "fd" / name).touch()
    (proc / "statm").write_text("2560 1024 300 10 0 900 0\n")
    (proc / "smaps_rollup").write_text(
        "00400000-7ffd [rollup]\nRss: 4096 kB\nPss: 3000 kB\nPrivate_Clean: 100 kB\n"
        "Private_Dirty: 2900 kB\nSwap: 12 kB\n"
    )
    (proc / "status").write_text("Name:\tpython\nThreads:\t7\n")
    (proc / "stat").write_text("42 (py thon) S " + " ".join(["0"] * 18) + " 500 0 0\n")
    (root / "stat").write_text("cpu 1 2 3\nbtime 1700000000\n")
    (root / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n")
    reader = LinuxProcess(proc, root)
    page = os.sysconf("SC_PAGE_SIZE")
    assert reader.memory_info().rss == 1024 * page and reader.memory_info().vms == 2560 * page
    full = reader.memory_full_info()
    assert (full.uss, full.pss, full.swap) == (3000 * 1024, 3000 * 1024, 12 * 1024)
    assert reader.num_threads() == 7 and reader.num_fds() == 3
    assert reader.create_time() == pytest.approx(1700000000 + 500 / os.sysconf("SC_CLK_TCK"))
    host = reader.host_memory()
    assert (host.total, host.available, host.percent) == (1000 * 1024, 250 * 1024, 75.0)


def test_memory_from_status_one_read_for_every_figure(tmp_path):
    """Linux 4.5+: RSS, its split, VMS, swap and peak from /proc/self/status; inside oneshot() the
    file is read once for memory and threads."""
    (tmp_path / "status").write_text(
        "Name:\tpython3\nVmPeak:\t  900 kB\nVmSize:\t  800 kB\nVmHWM:\t   700 kB\nVmRSS:\t   600 kB\n"
        "RssAnon:\t  400 kB\nRssFile:\t  150 kB\nRssShmem:\t   50 kB\nVmSwap:\t   30 kB\nThreads:\t4\n"
    )
    reader = LinuxProcess(tmp_path, tmp_path)
    with opened_files() as opened, reader.oneshot():
        memory, threads = reader.memory_info(), reader.num_threads()
    assert opened == [str(tmp_path / "status")]
    kib = 1024
    assert (memory.rss, memory.vms, memory.peak, memory.swap) == (600 * kib, 800 * kib, 700 * kib, 30 * kib)
    assert (memory.anon, memory.file, memory.shmem, memory.uss) == (400 * kib, 150 * kib, 50 * kib, None)
    assert threads == 4
    (tmp_path / "status").write_text("Name:\tpython3\nThreads:\t5\n")  # read afresh outside oneshot()
    assert reader.num_threads() == 5


def test_old_kernels_without_smaps_rollup_sum_the_mappings(tmp_path):
    (tmp_path / "statm").write_text("10 5 0 0 0 0 0\n")
    (tmp_path / "status").write_text("Name:\tpython\nThreads:\t1\n")  # before 4.5: no RSS split
    (tmp_path / "smaps").write_text(
        "a-b r-xp\nPss: 10 kB\nPrivate_Clean: 4 kB\nPrivate_Dirty: 0 kB\nSwap: 0 kB\n"
        "c-d rw-p\nPss: 20 kB\nPrivate_Clean: 0 kB\nPrivate_Dirty: 16 kB\nSwap: 8 kB\n"
    )
    full = LinuxProcess(tmp_path, tmp_path).memory_full_info()
    assert (full.uss, full.pss, full.swap) == (20 * 1024, 30 * 1024, 8 * 1024)


def test_a_refused_smaps_read_is_access_denied(tmp_path):
    """Hardened hosts refuse /proc/<pid>/smaps*: said as AccessDenied, which the monitor handles."""

    class Hardened(LinuxProcess):
        def _smaps_text(self) -> str:
            raise PermissionError(13, "Permission denied", str(self.proc / "smaps_rollup"))

    (tmp_path / "statm").write_text("10 5 0 0 0 0 0\n")
    (tmp_path / "status").write_text("Name:\tpython\n")
    reader = Hardened(tmp_path, tmp_path)
    with pytest.raises(AccessDenied, match="smaps_rollup"):
        reader.memory_full_info()
    assert reader.memory_info().rss == 5 * os.sysconf("SC_PAGE_SIZE")


def test_psutil_fallback_gives_the_same_shape():
    reader = PsutilProcess()
    full = reader.memory_full_info()
    assert full.rss > 0 and full.uss is not None and 0 < full.uss <= full.rss
    assert reader.num_threads() >= 1 and reader.host_memory().total > 0
    assert abs(process_rss() - reader.memory_info().rss) < 16 * MIB


@linux_only
def test_the_bot_does_not_import_psutil_on_linux():
    """psutil costs 0.85 MiB of RSS; on Linux the bot reads /proc instead."""
    code = "import sys, bot.app, polly.ext.cog, polly.metrics; print('psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert isinstance(current_process(), LinuxProcess)
