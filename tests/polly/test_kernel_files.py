"""Kernel files kept open and read again from their start: fresh text, one open, released, forks."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections import Counter

import pytest

from polly.config import Settings
from polly.kernel_files import CHUNK, KernelFile
from polly.memory_optimizer import MemoryMonitor
from tests.conftest import REPO_ROOT
from tests.opened_files import opened_files

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")


def open_counts() -> Counter[str]:
    """How many descriptors point at each file (a memory profiler may hold its own)."""
    counts: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        try:
            counts[os.readlink(f"/proc/self/fd/{fd}")] += 1
        except FileNotFoundError:
            continue
    return counts


def descriptors() -> set[str]:
    """What this process's descriptors point at (the listing's own descriptor is gone when read)."""
    return set(open_counts())


def test_a_kept_file_is_opened_once_and_read_afresh_each_time(tmp_path):
    path = tmp_path / "memory.current"
    path.write_text("100\n")
    file = KernelFile(path)
    with opened_files() as opened:
        assert file.read() == b"100\n"
    path.write_text("250\n")  # rewritten in place, as the kernel's text changes
    with opened_files() as opened_again:
        assert file.read() == b"250\n"
    assert opened == [str(path)] and opened_again == []
    assert str(path) in descriptors()
    file.close()
    assert str(path) not in descriptors()
    assert file.read() == b"250\n"  # read again after close: opened again
    file.close()


def test_without_keep_open_each_read_opens_and_closes(tmp_path):
    path = tmp_path / "memory.max"
    path.write_text("max\n")
    file = KernelFile(path, keep_open=False)
    with opened_files() as opened:
        assert file.read() == file.read() == b"max\n"
    assert opened == [str(path), str(path)]
    assert str(path) not in descriptors()


def test_a_file_larger_than_one_chunk_is_read_whole(tmp_path):
    path = tmp_path / "memory.stat"
    text = b"".join(b"line_%06d %d\n" % (i, i) for i in range(3 * CHUNK // 10))
    path.write_bytes(text)
    file = KernelFile(path)
    assert len(text) > 2 * CHUNK and file.read() == text
    file.close()


def test_a_missing_file_raises_what_open_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        KernelFile(tmp_path / "memory.pressure").read()


FORKING = """
import os
from polly.kernel_files import KernelFile

def mine(text):
    return f"\\nPid:\\t{os.getpid()}\\n".encode() in text

file = KernelFile("/proc/self/status")
assert mine(file.read())
child = os.fork()
if child == 0:  # the child: its own status, not the parent's through the inherited descriptor
    os._exit(0 if mine(file.read()) else 3)
_, status = os.waitpid(child, 0)
assert mine(file.read())  # the parent's descriptor still its own
print("child", os.waitstatus_to_exitcode(status))
"""


@linux_only
def test_a_forked_child_reads_its_own_proc_self():
    # in a process of its own: forking the test runner (its threads, a memory profiler) is not the point
    done = subprocess.run([sys.executable, "-c", FORKING], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["child", "0"]


@linux_only
def test_the_ticking_monitor_opens_its_files_once_and_close_releases_them():
    status = f"/proc/{os.getpid()}/status"  # a descriptor names the process that opened it
    before = open_counts()
    monitor = MemoryMonitor(Settings(), keep_files_open=True)
    monitor.sample()
    kept = open_counts() - before
    assert kept[status] == 1 and kept["/proc/meminfo"] == 1
    with opened_files() as opened:
        for _ in range(3):
            monitor.sample()
    assert opened == []
    monitor.close()
    left = open_counts() - before
    assert left[status] == 0 and left["/proc/meminfo"] == 0


def test_a_reader_dropped_without_close_releases_its_descriptor(tmp_path):
    path = tmp_path / "memory.events"
    path.write_text("oom_kill 0\n")
    file = KernelFile(path)
    file.read()
    assert str(path) in descriptors()
    del file
    gc.collect()
    assert str(path) not in descriptors()
