"""Polly memory ops: memory operations for discord.py bots.

    await bot.load_extension("polly")     # /mem, the monitor loop, alerts, endpoints (POLLY_ settings)

    polly.configure(bot, settings=polly.embedded_settings(memory_alert_channel_id=...), engine=engine)
    await bot.load_extension("polly")     # the same with your settings and your database

Importing `polly` imports neither discord.py nor the core: the names below load on first use, so
the core's modules (`polly.memory_utils`, `polly.memory_optimizer`, ...) stay usable on their own.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discord.ext import commands

__version__ = "0.2.0"

# discord.py drops `polly` and every `polly.*` module from sys.modules when the extension unloads
# (and so at each reload). Those modules hold process-wide state the host shares (the registry of
# tracked structures its own code registered in, the profiled functions' figures, the options of
# `configure`), and the host may hold their classes (`polly.MemoryCog`). So `teardown` keeps them
# aside and the next import of this package puts them back: a reload builds a new cog and memory
# layer from the same code, and host and extension keep seeing one registry and one MemoryCog.
_KEPT = "_polly_kept_modules"


def _restore_kept_core() -> None:
    kept = sys.modules.pop(_KEPT, None)
    if kept is None:
        return
    modules: dict[str, types.ModuleType] = kept.modules
    for name, module in modules.items():
        sys.modules.setdefault(name, module)


_restore_kept_core()


async def setup(bot: commands.Bot) -> None:
    """discord.py's extension entry point: `await bot.load_extension("polly")`."""
    from polly.ext import setup as add_extension

    await add_extension(bot)


async def teardown(_bot: commands.Bot) -> None:
    """discord.py calls this after removing the cog (which released everything it held)."""
    kept = {name: module for name, module in sys.modules.items() if name.startswith("polly.")}
    holder = types.ModuleType(_KEPT, "Polly's modules, kept across an unload of the extension")
    holder.modules = kept  # type: ignore[attr-defined]
    sys.modules[_KEPT] = holder


_LAZY = {
    "configure": "polly.host_options",
    "MemoryCog": "polly.ext.cog",
    "add_memory_cog": "polly.ext.cog",
    "Settings": "polly.config",
    "ConfigError": "polly.config",
    "embedded_settings": "polly.host_settings",
    "Database": "polly.enhanced_database",
}


def __getattr__(name: str) -> Any:
    """`polly.MemoryCog` and friends on first use; `polly.<submodule>` for a submodule already imported
    (after a reload this package is a new module object that has not bound them yet)."""
    if name in _LAZY:
        module = __import__(_LAZY[name], fromlist=[name])
        return getattr(module, name)
    submodule = sys.modules.get(f"{__name__}.{name}")
    if submodule is not None:
        return submodule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "Database",
    "MemoryCog",
    "Settings",
    "add_memory_cog",
    "configure",
    "embedded_settings",
    "setup",
    "teardown",
]
