"""Telling a database outage from a bug, and saying it: an outage is one WARNING line (what the
database said; the traceback at DEBUG), a bug keeps its traceback."""

from __future__ import annotations

import logging

from sqlalchemy import exc as sa_exc

from polly.enhanced_database import DatabaseUnreachableError, PoolTimeoutError


def is_database_outage(error: BaseException | None) -> bool:
    """The database refused or could not be reached (locked, read-only, stopped, hung, pool
    exhausted): an outage to report in one line, not a bug to show with a traceback."""
    return isinstance(error, (sa_exc.DBAPIError, PoolTimeoutError, DatabaseUnreachableError))


def log_failure(logger: logging.Logger, error: BaseException, message: str, *args: object) -> None:
    """Log `message` for a failure: a database outage as one WARNING line saying what the database
    said (its traceback at DEBUG), anything else (a bug) with its traceback."""
    if is_database_outage(error):
        cause = getattr(error, "orig", None) or error
        said = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
        logger.warning("%s (database: %s)", message % args if args else message, said)
        logger.debug("Details", exc_info=error)
    else:
        logger.error(message, *args, exc_info=error)
