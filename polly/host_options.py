"""What a host bot hands the extension before `load_extension("polly")`: its settings, its database.

`polly.configure(bot, settings=..., engine=...)` records them here, per bot (weakly: a closed bot is
forgotten), and every load and reload of the extension in that bot uses them. Without it the
extension reads the POLLY_ variables and keeps its own SQLite file.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from polly.records import record

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from polly.config import Settings
    from polly.enhanced_database import Database


@record
class HostOptions:
    """Options for the memory cog of one bot (None: the extension's own)."""

    settings: Settings | None = None
    database: Database | None = None
    engine: AsyncEngine | None = None


_by_bot: weakref.WeakKeyDictionary[object, HostOptions] = weakref.WeakKeyDictionary()


def configure(
    bot: object,
    *,
    settings: Settings | None = None,
    database: Database | None = None,
    engine: AsyncEngine | None = None,
) -> None:
    """Use these settings and this database for the memory extension in `bot`, from its next load on.

    `engine`: your SQLAlchemy async engine; Polly keeps its `polly_*` tables in that database and
    `/mem pool` watches that pool; you close it. `database`: the same as a `polly.Database`."""
    if database is not None and engine is not None:
        raise ValueError("pass engine= or database=, not both")
    _by_bot[bot] = HostOptions(settings, database, engine)


def options_for(bot: object) -> HostOptions:
    """What `configure` recorded for `bot`, or the extension's own defaults."""
    return _by_bot.get(bot, HostOptions())
