"""Which files the process opens, seen by a Python audit hook (the real reads, not a fake /proc)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_listening: list[list[str]] = []
_hooked = False


def _on_event(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _listening and isinstance(args[0], (str, bytes, os.PathLike)):
        _listening[-1].append(os.fsdecode(args[0]))


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """The paths opened inside the block, in order (an audit hook cannot be removed: installed
    once, it records only while a block listens)."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_on_event)
        _hooked = True
    paths: list[str] = []
    _listening.append(paths)
    try:
        yield paths
    finally:
        _listening.remove(paths)
