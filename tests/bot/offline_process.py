"""Starting `python -m bot --offline` as its own process, stdin kept open (the console waits and
the bot runs), with settings from the test and none from the machine's environment."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import REPO_ROOT

OWN_SETTINGS = ("DB_", "DATABASE_", "DISCORD_", "MEMORY_", "HEALTH_", "INSTANCE_", "FLEET_", "ALERT_")


def start_offline(
    cwd: Path, *, stdout: int | None = subprocess.PIPE, cgroup: Path | None = None, **settings: str
) -> subprocess.Popen[str]:
    """`cgroup`: a cgroup folder the process joins before Python starts (so all it allocates counts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
    env.update(PYTHONPATH=str(REPO_ROOT), **settings)

    def join_cgroup() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--offline"],
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout == subprocess.PIPE else subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        text=True,
        preexec_fn=join_cgroup if cgroup is not None else None,
    )


class Console:
    """One offline bot process, driven line by line."""

    def __init__(self, cwd: Path, name: str, cgroup: Path | None = None, **settings: str) -> None:
        self.name = name
        self.child = start_offline(cwd, cgroup=cgroup, **settings)
        self.output: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            with self._changed:
                self.output.append(line)
                self._changed.notify_all()

    def run(self, line: str, until: str, timeout: float = 90) -> str:
        """Send a line; return the output it produced, once `until` appears in it."""
        start = len(self.output)
        assert self.child.stdin is not None
        try:
            self.child.stdin.write(line + "\n")
            self.child.stdin.flush()
        except BrokenPipeError:  # it stopped on its own: say how, with what it printed
            self.child.wait(timeout=10)
            raise AssertionError(
                f"{self.name} had stopped (exit {self.child.returncode}) before {line!r}:\n{''.join(self.output)}"
            ) from None
        deadline = time.monotonic() + timeout
        with self._changed:
            while until not in "".join(self.output[start:]):
                if time.monotonic() > deadline or self.child.poll() is not None:
                    raise AssertionError(f"{self.name}: {until!r} never came after {line!r}:\n{''.join(self.output)}")
                self._changed.wait(0.5)
        time.sleep(0.3)  # the rest of the reply (the reader appends meanwhile: the lock is free)
        return "".join(self.output[start:])

    def advance(self, minutes: int) -> None:
        """Move the simulated clock a minute at a time (a tick each)."""
        for _ in range(minutes):
            self.run(":advance 1m", "Simulated clock now")

    def quit(self) -> None:
        if self.child.poll() is None:
            assert self.child.stdin is not None
            self.child.stdin.write(":quit\n")
            self.child.stdin.close()
            self.child.wait(timeout=60)
