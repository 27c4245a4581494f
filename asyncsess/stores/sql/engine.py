"""SQL engine plumbing shared by :class:`~asyncsess.stores.sql.SQLStore` and the SQL
accounts backend: an engine from a URL, AUTOCOMMIT, bounded calls with driver errors
mapped to asyncsess's (fail closed), and the create-table race.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import anyio
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ...exceptions import ConfigurationError, StoreError, StoreUnavailable

__all__ = [
    "UNAVAILABLE",
    "autocommit",
    "engine_from_url",
    "ensure_table",
    "failure",
    "guarded",
    "reason",
    "refused_for_now",
]

#: The async driver filled in for a bare ``dialect://`` URL.
_DRIVERS: Final = dict(sqlite="aiosqlite", postgresql="asyncpg", mysql="asyncmy", mariadb="asyncmy")
#: Each driver's connect (SQLite: busy) timeout argument, set from ``timeout`` unless given.
_CONNECT_TIMEOUT: Final = dict(
    aiosqlite="timeout", asyncpg="timeout", asyncmy="connect_timeout", aiomysql="connect_timeout"
)
#: SQLSTATE classes that mean "not now": connection exception, insufficient resources
#: (too many connections), operator intervention (shutting down, starting up, not yet
#: accepting connections, a cancelled statement) and system error (I/O).
_UNAVAILABLE_STATES: Final = ("08", "53", "57", "58")
#: Failures that mean "the database is not there right now": retry later, fail closed.
UNAVAILABLE: Final = (
    OSError,  # also builtin TimeoutError; drivers raise refused connections unwrapped
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    sqlite3.OperationalError,
)


def _sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL, far fewer fsyncs
    cursor.close()


def engine_from_url(url: str, *, timeout: float, **engine_options: Any) -> AsyncEngine:
    """An AUTOCOMMIT engine for ``url``; ``engine_options`` go to ``create_async_engine``.

    A bare ``sqlite://``, ``postgresql://``, ``mysql://`` or ``mariadb://`` URL
    gets its async driver (aiosqlite, asyncpg, asyncmy); connecting and waiting
    for a pooled connection are bounded by ``timeout``; a SQLite file runs in
    WAL mode. A URL SQLAlchemy refuses is a :class:`ConfigurationError`.
    """
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigurationError(f"not an SQLAlchemy URL: {exc}") from None
    if "+" not in parsed.drivername and parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=f"{parsed.drivername}+{_DRIVERS[parsed.drivername]}")
    options = dict(engine_options)
    connect_args = dict(options.pop("connect_args", {}))
    timeout_arg = _CONNECT_TIMEOUT.get(parsed.get_driver_name())
    if timeout_arg and timeout_arg not in parsed.query:
        connect_args.setdefault(timeout_arg, timeout)
    options.setdefault("isolation_level", "AUTOCOMMIT")
    options.setdefault("skip_autocommit_rollback", True)
    sqlite = parsed.get_backend_name() == "sqlite"
    in_memory = sqlite and parsed.database in (None, "", ":memory:")
    if not in_memory:  # one shared connection (StaticPool): no pool to wait for
        options.setdefault("pool_timeout", timeout)
    try:
        engine = create_async_engine(parsed, connect_args=connect_args, **options)
    except (sa_exc.ArgumentError, sa_exc.InvalidRequestError) as exc:
        raise ConfigurationError(f"cannot use SQL store URL: {exc}") from exc
    if sqlite and not in_memory:
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` in AUTOCOMMIT mode: single statements need no BEGIN and ROLLBACK.

    An engine made with ``isolation_level="AUTOCOMMIT"`` is returned as is
    (setting it per checkout would cost a reset on every checkin).
    """
    level = engine.get_execution_options().get("isolation_level")
    on_connect = getattr(engine.sync_engine.dialect, "_on_connect_isolation_level", None)
    if "AUTOCOMMIT" in (level, on_connect):
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def reason(exc: BaseException) -> str:
    """The driver's own message, without the statement and parameters SQLAlchemy appends."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:200]}" if lines else type(cause).__name__


def failure(exc: BaseException, what: str) -> StoreError:
    """The asyncsess error for an SQLAlchemy, sqlite3 or OS error during ``what``.

    :class:`StoreUnavailable` (try again later) for a server or connection that is
    not there now, including PostgreSQL's refusals while it starts up, shuts down or
    runs out of connections (SQLSTATE classes 08, 53, 57 and 58); otherwise
    :class:`StoreError`.
    """
    if isinstance(exc, UNAVAILABLE):
        return StoreUnavailable(f"{what} is unavailable: {reason(exc)}")
    if isinstance(exc, sa_exc.DBAPIError) and (exc.connection_invalidated or refused_for_now(exc)):
        return StoreUnavailable(f"{what} failed: {reason(exc)}")
    return StoreError(f"{what} failed: {reason(exc)}")


def refused_for_now(exc: BaseException) -> bool:
    """Whether a driver's error (raw, or wrapped by SQLAlchemy) carries an SQLSTATE that
    means the server cannot serve now (see :data:`_UNAVAILABLE_STATES`)."""
    error = getattr(exc, "orig", None) or exc
    return str(getattr(error, "sqlstate", None) or "")[:2] in _UNAVAILABLE_STATES


@contextmanager
def guarded(what: str, timeout: float, *, shield: bool = False) -> Iterator[None]:
    """Bound the block by ``timeout`` and map what it raises (``what`` names the database).

    ``shield``: a cancelled caller waits (at most the timeout) for the statement
    in flight rather than tearing the connection down.
    """
    try:
        with anyio.fail_after(timeout, shield=shield):
            yield
    except TimeoutError as exc:
        raise StoreUnavailable(f"{what} did not answer within {timeout:g} s") from exc
    except (*UNAVAILABLE, sa_exc.SQLAlchemyError, sqlite3.Error) as exc:
        raise failure(exc, what) from exc


async def ensure_table(conn: AsyncConnection, table: sa.Table, *, create: bool) -> None:
    """Create ``table`` (and its indexes) unless it exists; with ``create=False``, check it does.

    Another process may create it between the check and ``CREATE``: that is not
    an error. A missing table with ``create=False`` is a :class:`ConfigurationError`.
    """

    def run(sync: sa.Connection) -> None:
        if not create:
            if not sa.inspect(sync).has_table(table.name):
                raise ConfigurationError(
                    f"the table {table.name!r} does not exist and create_table=False: run the "
                    "migrations that create it (its schema is asyncsess.stores.sql.metadata, "
                    "or asyncsess.accounts.backends.sql.metadata for users), or pass "
                    "create_table=True"
                )
            return
        try:
            table.create(sync, checkfirst=True)
        except (sa_exc.ProgrammingError, sa_exc.IntegrityError, sa_exc.OperationalError):
            if not sa.inspect(sync).has_table(table.name):
                raise

    await conn.run_sync(run)
