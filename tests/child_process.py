"""Code run in a fresh interpreter, for what one test process cannot show (what a start imports,
what a module defines before anything else touched it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def child_json(code: str, cwd: Path) -> object:
    """Run `code` (after `import sys, json`) in a fresh interpreter; the JSON its last line printed."""
    out = subprocess.run(
        [sys.executable, "-c", f"import sys, json\n{code}"],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
