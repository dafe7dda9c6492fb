"""Kernel files kept open and read again from their start: fresh text, one open, released, forks."""

from __future__ import annotations

import os

import pytest

from polly.config import Settings
from polly.kernel_files import CHUNK, KernelFile
from polly.memory_optimizer import MemoryMonitor
from tests.opened_files import opened_files

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")


def descriptors() -> set[str]:
    """What this process's descriptors point at (the listing's own descriptor is gone when read)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            continue
    return found


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


@linux_only
def test_a_forked_child_reads_its_own_proc_self():
    file = KernelFile("/proc/self/status")
    assert f"\nPid:\t{os.getpid()}\n".encode() in file.read()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its own status, not the parent's through the inherited descriptor
        try:
            os.write(write_end, b"ok" if f"\nPid:\t{os.getpid()}\n".encode() in file.read() else b"parent's")
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(child, 0)
    assert answer == b"ok"
    assert f"\nPid:\t{os.getpid()}\n".encode() in file.read()  # the parent's descriptor still its own
    file.close()


@linux_only
def test_the_ticking_monitor_opens_its_files_once_and_close_releases_them():
    monitor = MemoryMonitor(Settings(), keep_files_open=True)
    monitor.sample()
    kept = descriptors()
    assert "/proc/self/status" not in kept  # a descriptor names the process it opened: /proc/<pid>/...
    assert f"/proc/{os.getpid()}/status" in kept and "/proc/meminfo" in kept
    with opened_files() as opened:
        for _ in range(3):
            monitor.sample()
    assert opened == []
    monitor.close()
    left = descriptors()
    assert f"/proc/{os.getpid()}/status" not in left and "/proc/meminfo" not in left
