"""The Discord-facing part of Polly: the extension any discord.py bot loads.

`await bot.load_extension("polly")` runs `setup()` here (through `polly/__init__.py`), which adds
`MemoryCog` with what `polly.configure(bot, ...)` recorded for that bot, else the POLLY_ settings
and Polly's own SQLite file. A host may also construct `polly.MemoryCog(bot, settings=...,
engine=...)` and add it with `add_memory_cog` itself.
"""

from __future__ import annotations

from discord.ext import commands

from polly.ext.cog import MemoryCog, add_memory_cog
from polly.host_options import options_for

__all__ = ["MemoryCog", "add_memory_cog", "setup"]


async def setup(bot: commands.Bot) -> None:
    """Add /mem, the monitor loop, the alerts and (HEALTH_PORT set) the endpoints to `bot`."""
    options = options_for(bot)
    cog = MemoryCog(bot, settings=options.settings, database=options.database, engine=options.engine)
    await add_memory_cog(bot, cog)
