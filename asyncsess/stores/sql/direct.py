"""The SQL store's read bypass on asyncpg and asyncmy (``direct_reads=True``, the default).

A lookup by key runs straight on a driver connection leased from the
engine's pool and kept for the next read: no pool checkout, no SQLAlchemy
execution per read (so no SQLAlchemy event or instrumentation sees it), with
SQLAlchemy's own SQL compiled for the driver.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import anyio
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ...exceptions import StoreError, StoreUnavailable
from .engine import UNAVAILABLE, guarded, reason, refused_for_now

__all__ = ["DRIVERS", "DirectReader"]

#: Drivers the bypass serves.
DRIVERS: Final = ("asyncpg", "asyncmy")
#: Driver exception classes (by name, anywhere in the MRO) that mean the server is not
#: there: asyncpg's ConnectionDoesNotExistError, InterfaceError, AdminShutdownError,
#: CannotConnectNowError; asyncmy's OperationalError and InterfaceError.
_DRIVER_UNAVAILABLE: Final = ("Connect", "Interface", "Operational", "Shutdown")
_Lease = tuple[AsyncConnection, Any]


def _driver_unavailable(exc: Exception) -> bool:
    """Whether a driver's own exception means the server or the connection is gone."""
    if isinstance(exc, TimeoutError):  # the call's deadline: no time for another try
        return False
    names = " ".join(k.__name__ for k in type(exc).__mro__)
    return (
        isinstance(exc, OSError)
        or any(n in names for n in _DRIVER_UNAVAILABLE)
        or refused_for_now(exc)
    )


class DirectReader:
    """``SELECT`` rows by key on kept driver connections (at most ``keep`` between reads)."""

    def __init__(
        self, engine: AsyncEngine, get: sa.Select[Any], *, keep: int, timeout: float, what: str
    ) -> None:
        self._engine, self._keep, self._timeout, self._what = engine, keep, timeout, what
        self._asyncpg = engine.dialect.driver == "asyncpg"
        sql = get.compile(dialect=engine.dialect).string
        self._get = sql
        if self._asyncpg:
            head, eq, tail = sql.rpartition(" = $1::VARCHAR")
            self._in = head + " = ANY($1::VARCHAR[])"
        else:
            head, eq, tail = sql.rpartition(" = %s")
            self._in = head + " IN "
        assert eq and not tail, "the compiled get must end in its key parameter"
        self._leased: list[_Lease] = []

    async def fetch(self, keys: list[str]) -> list[Any]:
        """The rows of ``keys``, bounded and shielded like every store call.

        A connection that fails is invalidated; when a kept one is found broken
        (the server restarted or dropped it), the read, which is idempotent,
        runs once more on a new one.
        """
        with guarded(self._what, self._timeout, shield=True):
            try:
                kept = self._leased.pop() if self._leased else None
                try:
                    return await self._fetch_on(kept, keys)
                except Exception as exc:
                    if kept is None or not _driver_unavailable(exc):
                        raise
                return await self._fetch_on(None, keys)
            except (*UNAVAILABLE, sa_exc.SQLAlchemyError, StoreError):
                raise  # mapped by guarded (or already ours)
            except Exception as exc:  # the driver's own
                kind = StoreUnavailable if _driver_unavailable(exc) else StoreError
                raise kind(f"{self._what} failed: {reason(exc)}") from exc

    async def _fetch_on(self, lease: _Lease | None, keys: list[str]) -> list[Any]:
        if lease is None:
            conn = await self._engine.connect()
            lease = (conn, (await conn.get_raw_connection()).driver_connection)
        try:
            driver = lease[1]
            if self._asyncpg:
                if len(keys) == 1:
                    rows = await driver.fetch(self._get, keys[0])
                else:
                    rows = await driver.fetch(self._in, keys)
            else:
                sql = self._get
                if len(keys) > 1:
                    sql = f"{self._in}({', '.join(['%s'] * len(keys))})"
                async with driver.cursor() as cursor:
                    await cursor.execute(sql, keys)
                    rows = await cursor.fetchall()
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await lease[0].invalidate()
                await lease[0].close()
            raise
        if len(self._leased) < self._keep:
            self._leased.append(lease)
        else:
            with anyio.CancelScope(shield=True):
                await lease[0].close()
        return list(rows)

    async def aclose(self) -> None:
        """Give the kept connections back to the pool."""
        leased, self._leased = self._leased, []
        for conn, _ in leased:
            with contextlib.suppress(Exception):
                await conn.close()
