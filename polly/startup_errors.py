"""Why the bot (or the memory extension) could not start, as one line, and an exit code a process supervisor can act on.

2 (EXIT_CONFIG): a setting is wrong; restarting cannot help until it is changed.
1 (EXIT_OUTAGE): something the bot needs (its database, Discord) is not reachable now; restarting
   later may work. Polly does not retry itself: a supervisor restarting it on exit 1 with a delay
   (README, "When start-up fails") does the same with less code in the bot, and an operator
   sees each failed attempt in the log.
"""

from __future__ import annotations

import socket
import sqlite3

from polly.config import Settings
from polly.settings_spec import masked_url

EXIT_CONFIG = 2
EXIT_OUTAGE = 1


class StartupError(RuntimeError):
    """The bot cannot start as configured; the message names the setting to change."""

    exit_code = EXIT_CONFIG


class OutageError(StartupError):
    """Something the bot needs is unreachable now; the message says what to check."""

    exit_code = EXIT_OUTAGE


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: SQLAlchemy's `orig`, then causes and contexts."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        inner = getattr(current, "orig", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return found


def database_failure(exc: BaseException, settings: Settings) -> StartupError:
    """What stopped the first connection to the database URL, said once, with what to check."""
    var = settings.variable("database_url")
    url = masked_url(settings.database_url)
    chain = causes(exc)
    names = {type(e).__name__ for e in chain}
    first = str(chain[-1]).splitlines()[0] if str(chain[-1]) else type(chain[-1]).__name__
    path = settings.sqlite_path()
    if path is not None:
        if any(isinstance(e, OSError) for e in chain) or "unable to open database file" in first:
            return StartupError(
                f"{var}={url}: cannot open the SQLite file {path} ({first}): "
                "check that its folder exists or can be created and is writable, and that the path is not a folder"
            )
        if "readonly" in first or "read-only" in first:
            return StartupError(
                f"{var}={url}: {path} is read-only ({first}): Polly keeps its tables there, so make the file "
                f"and its folder writable by this user, or point {var} at another file"
            )
        if any(isinstance(e, sqlite3.DatabaseError) for e in chain):
            return StartupError(
                f"{var}={url}: {path} cannot be used as a SQLite database ({first}): "
                f"point {var} at a new file or at Polly's database"
            )
    if names & {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return StartupError(f"{var}={url}: PostgreSQL refused the user or password ({first}): check both in {var}")
    if "InvalidCatalogNameError" in names:
        return StartupError(f"{var}={url}: {first}: create it (createdb) or correct the database name in {var}")
    if any(isinstance(e, socket.gaierror) for e in chain):
        return OutageError(
            f"{var}={url}: the database host name cannot be resolved ({first}): check the host name "
            "and this machine's DNS"
        )
    if any(isinstance(e, (OSError, TimeoutError)) for e in chain):
        return OutageError(
            f"{var}={url}: the database cannot be reached ({first}): is the server running, "
            "and are the host and port right?"
        )
    return OutageError(f"{var}={url}: the database could not be opened ({type(chain[-1]).__name__}: {first})")
