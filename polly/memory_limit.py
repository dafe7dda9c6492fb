"""The effective memory limit: cgroup v2 or v1, MEMORY_LIMIT_MB, else the host's total.

The host's total alone is wrong inside a container, where "80 % of the limit" means the
container's limit. Paths are constructor parameters so tests read fixture files (as Prometheus' collectors do).
"""

from __future__ import annotations

from pathlib import Path

from polly.formatting import MIB
from polly.records import record

# cgroup v1 reports "no limit" as a huge number (page-rounded LONG_MAX); anything above this is none.
UNLIMITED_THRESHOLD = 1 << 60


@record
class MemoryLimit:
    bytes: int
    source: str


@record
class CgroupDir:
    """This process's memory cgroup: its folder and the cgroup version that reads it."""

    version: int  # 2 (unified) or 1 (the memory controller's own hierarchy)
    path: Path


class CgroupReader:
    """Reads this process's cgroup memory limit; paths are parameters so tests use fixture files."""

    def __init__(self, root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> None:
        self.root = root
        self.proc_cgroup = proc_cgroup

    def _own_paths(self) -> dict[str, str]:
        """Controller ("" for v2) → this process's cgroup path, from /proc/self/cgroup."""
        paths: dict[str, str] = {}
        try:
            for line in self.proc_cgroup.read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    paths[controller] = path
        except (OSError, ValueError):
            pass
        return paths

    def _candidates(self) -> list[tuple[Path, str]]:
        paths = self._own_paths()
        out: list[tuple[Path, str]] = []
        v2 = paths.get("", "/").lstrip("/")
        for base in ([self.root / v2] if v2 else []) + [self.root]:
            out.append((base / "memory.max", "cgroup v2 memory.max"))
        v1 = paths.get("memory", "/").lstrip("/")
        for base in ([self.root / "memory" / v1] if v1 else []) + [self.root / "memory"]:
            out.append((base / "memory.limit_in_bytes", "cgroup v1 memory.limit_in_bytes"))
        return out

    def memory_dir(self) -> CgroupDir | None:
        """The folder holding this process's memory cgroup files (its own path, else the mount's root,
        as inside a container's cgroup namespace), or None outside any memory cgroup."""
        paths = self._own_paths()
        v2 = paths.get("", "/").lstrip("/")
        for base in ([self.root / v2] if v2 else []) + [self.root]:
            # cgroup.controllers marks a unified mount; memory.stat that the memory controller is on
            if (base / "memory.stat").is_file() and (base / "cgroup.controllers").is_file():
                return CgroupDir(2, base)
        v1 = paths.get("memory", "/").lstrip("/")
        for base in ([self.root / "memory" / v1] if v1 else []) + [self.root / "memory"]:
            if (base / "memory.usage_in_bytes").is_file():
                return CgroupDir(1, base)
        return None

    def limit(self) -> MemoryLimit | None:
        """The first limit found, or None when unlimited or not in a cgroup."""
        for path, source in self._candidates():
            try:
                text = path.read_text().strip()
            except OSError:
                continue
            if text == "max":
                return None
            try:
                value = int(text)
            except ValueError:
                continue
            return None if value >= UNLIMITED_THRESHOLD else MemoryLimit(value, source)
        return None


def effective_limit(cgroup: MemoryLimit | None, limit_mb: int | None, host_total: int) -> MemoryLimit:
    """The smallest limit that applies: cgroup, MEMORY_LIMIT_MB, else the host's total memory."""
    options = [MemoryLimit(host_total, "host total")]
    if cgroup is not None:
        options.append(cgroup)
    if limit_mb is not None:
        options.append(MemoryLimit(limit_mb * MIB, "MEMORY_LIMIT_MB"))
    # Prefer a configured limit over the host total when equal; min() keeps the first minimum.
    return min(reversed(options), key=lambda limit: limit.bytes)
