"""The effective memory limit from cgroup fixture files, MEMORY_LIMIT_MB and the host total."""

from __future__ import annotations

from pathlib import Path

import pytest

from polly.formatting import MIB
from polly.memory_limit import CgroupReader, MemoryLimit, effective_limit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cgroup"


def reader(name: str) -> CgroupReader:
    return CgroupReader(root=FIXTURES / name / "sys", proc_cgroup=FIXTURES / name / "proc_cgroup")


def test_cgroup_v2_limit_is_read_from_own_cgroup_path():
    assert reader("v2").limit() == MemoryLimit(512 * MIB, "cgroup v2 memory.max")


def test_cgroup_v1_limit_is_read_from_memory_controller_path():
    assert reader("v1").limit() == MemoryLimit(256 * MIB, "cgroup v1 memory.limit_in_bytes")


@pytest.mark.parametrize("name", ["v1-unlimited", "v2-max"])
def test_unlimited_cgroups_mean_no_limit(name):
    assert reader(name).limit() is None


def test_missing_cgroup_files_mean_no_limit(tmp_path):
    assert CgroupReader(root=tmp_path, proc_cgroup=tmp_path / "nope").limit() is None


def test_effective_limit_is_the_smallest_that_applies():
    host = 16 * 1024 * MIB
    cgroup = MemoryLimit(512 * MIB, "cgroup v2 memory.max")
    assert effective_limit(None, None, host) == MemoryLimit(host, "host total")
    assert effective_limit(cgroup, None, host) == cgroup
    assert effective_limit(cgroup, 256, host) == MemoryLimit(256 * MIB, "MEMORY_LIMIT_MB")
    assert effective_limit(cgroup, 1024, host) == cgroup
