"""The SQL store's aiosqlite fast path: statements straight on the driver, reads on one connection.

aiosqlite runs each connection's statements on a thread of its own. A
single statement sent straight to the driver, with SQLAlchemy's own SQL
compiled once (:mod:`.statements`), is one hop to that thread for a read
(two for a write) instead of three or four through SQLAlchemy's adapter.
When the store owns its engine and the pool has room for writers beside it,
plain reads share one held connection (no pool checkout per read): aiosqlite
queues their statements. SQLAlchemy's events and the instrumentation
attached to them do not see these calls (``direct_reads=False`` keeps them
on the engine).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..._deadline import Deadlines
from ...exceptions import StoreUnavailable
from .engine import UNAVAILABLE, failure, reason
from .statements import Compiled

__all__ = ["SQLite"]

#: The statements that return rows (the others return a row count).
_READS: Final = ("get", "list_user")


class SQLite:
    """One store's compiled statements on aiosqlite, and its held reading connection."""

    def __init__(
        self, engine: AsyncEngine, compiled: dict[str, Compiled], *, timeout: float, what: str
    ) -> None:
        self._engine, self._timeout, self._what = engine, timeout, what
        self.statements = compiled
        head, eq, tail = compiled["get"][0].rpartition(" = ?")
        assert eq and not tail, "the compiled get must end in its key parameter"
        self.get = compiled["get"][0]
        self._in = head + " IN "
        self._reader: AsyncConnection | None = None
        self._reader_driver: Any = None
        self._deadlines = Deadlines(timeout)

    def select_in(self, count: int) -> str:
        """``SELECT`` the rows of ``count`` keys (``WHERE key IN (?, ...)``)."""
        return f"{self._in}({','.join('?' * count)})"

    def holds(self, conn: AsyncConnection) -> bool:
        """Whether ``conn`` is the held reading connection."""
        return conn is self._reader

    async def reader(self) -> AsyncConnection:
        """The held reading connection (opened on first use)."""
        if self._reader is None:
            conn = await self._engine.connect()
            if self._reader is None:
                self._reader = conn
            else:
                await conn.close()
        return self._reader

    async def driver(self, conn: AsyncConnection) -> Any:
        """The aiosqlite connection under ``conn`` (kept for the held reader)."""
        if conn is self._reader and self._reader_driver is not None:
            return self._reader_driver
        driver = (await conn.get_raw_connection()).driver_connection
        if conn is self._reader:
            self._reader_driver = driver
        return driver

    async def drop_reader(self) -> None:
        """Close the held reader (broken, or the store closing); the next read opens one."""
        self._reader_driver = None
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.close()

    async def run(
        self, conn: AsyncConnection, name: str, params: dict[str, Any]
    ) -> tuple[list[Any], int]:
        """Run the compiled statement ``name`` on ``conn``'s driver: its rows and row count."""
        sql, order = self.statements[name]
        args = tuple(params[p] for p in order)
        driver = await self.driver(conn)
        try:
            if name in _READS:
                return list(await driver.execute_fetchall(sql, args)), -1
            async with driver.execute(sql, args) as cursor:
                return [], int(cursor.rowcount)
        except ValueError as exc:  # aiosqlite: "no active connection"
            await conn.invalidate()
            raise StoreUnavailable(f"{self._what} is unavailable: {reason(exc)}") from exc

    async def read_held(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """One read on the held connection: one hop to its thread, bounded without a timer
        of its own (:mod:`asyncsess._deadline`) and unshielded: a cancelled read leaves
        nothing half-done on the connection (aiosqlite queues its statements)."""
        try:
            with self._deadlines:
                driver = self._reader_driver or await self.driver(await self.reader())
                rows: list[Any] = await driver.execute_fetchall(sql, args)  # a list
                return rows
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"{self._what} did not answer within {self._timeout:g} s"
            ) from exc
        except (*UNAVAILABLE, sa_exc.SQLAlchemyError, sqlite3.Error, ValueError) as exc:
            await self.drop_reader()  # a broken connection: the next read opens a new one
            if isinstance(exc, ValueError):  # aiosqlite: "no active connection"
                raise StoreUnavailable(f"{self._what} is unavailable: {reason(exc)}") from exc
            raise failure(exc, self._what) from exc
