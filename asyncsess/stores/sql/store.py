"""SQL store on SQLAlchemy 2's asyncio extension: SQLite, PostgreSQL, MySQL and MariaDB.

One table (:mod:`.schema`: :data:`metadata`, :func:`sessions_table`). Every
statement runs in AUTOCOMMIT mode: each call is a single statement
(a sweep is two, each safe alone), so a read costs one round trip and no
``BEGIN``/``ROLLBACK``.

A rewrite sets every column in one ``UPDATE``, so a
record moving to another user reference moves in the same statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import timedelta
from typing import Any, Final, Self

import anyio
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ...exceptions import StoreError, StoreUnavailable
from .._timeout import check_timeout
from ..base import Record, RecordExists, Renewal, Store
from .direct import DRIVERS, DirectReader
from .engine import UNAVAILABLE, autocommit, engine_from_url, ensure_table, guarded
from .scan import scan_rows
from .schema import DEFAULT_TABLE, metadata, sessions_table
from .sqlite import SQLite
from .statements import Statements, columns, from_row, renew_params

__all__ = ["SQLStore"]

_WHAT: Final = "the SQL store"
_NO_LOCK: Final = nullcontext()
_KEEP: Final = 4  # driver connections kept between direct reads, at most


class SQLStore(Store):
    """Sessions in one SQL table, through an SQLAlchemy :class:`AsyncEngine`.

    Pass an engine the application owns (never disposed by :meth:`aclose`; for
    SQLite, enable WAL on it), or use :meth:`from_url`. Every call is bounded by
    ``timeout`` seconds and fails with :class:`StoreUnavailable` when the database
    is unreachable or slow. With ``create_table=False`` the table must exist
    already (migrations).
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        table: str = DEFAULT_TABLE,
        timeout: float | timedelta = 5.0,
        create_table: bool = True,
        direct_reads: bool = True,
    ) -> None:
        timeout = check_timeout(timeout, "SQLStore")
        self._owned = False
        self._opened = False
        self._open_lock = anyio.Lock()
        self._held: SQLite | None = None  # aiosqlite: reads share one held connection
        #: Seconds every call may take.
        self.timeout: float = timeout
        #: Whether the store creates its table (and the near cache's trigger) when it opens.
        self.create_table: bool = create_table
        self._engine = engine = autocommit(engine)
        # SQLite has one writer at a time: queue this process's writers here rather
        # than in SQLite's busy handler, which sleeps for milliseconds between tries.
        self._writer = anyio.Lock() if engine.dialect.name == "sqlite" else _NO_LOCK
        if table == DEFAULT_TABLE:
            self.table = metadata.tables[table]
        else:
            self.table = sessions_table(sa.MetaData(), table)
        self._statements = statements = Statements(self.table)
        # aiosqlite: single statements straight on the driver (see .sqlite)
        self._sqlite: SQLite | None = None
        if engine.dialect.driver == "aiosqlite" and direct_reads:
            compiled = statements.compiled(engine.dialect)
            self._sqlite = SQLite(engine, compiled, timeout=timeout, what=_WHAT)
        # asyncpg, asyncmy: reads straight on kept driver connections (see .direct), when
        # the store owns the engine (from_url)
        self._direct: DirectReader | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float | timedelta = 5.0,
        create_table: bool = True,
        direct_reads: bool = True,
        **engine_options: Any,
    ) -> Self:
        """Build a store with its own engine; other options go to ``create_async_engine``.

        A bare ``sqlite://``, ``postgresql://``, ``mysql://`` or ``mariadb://`` URL
        gets its async driver (aiosqlite, asyncpg, asyncmy).
        """
        timeout = check_timeout(timeout, "SQLStore")
        engine = engine_from_url(url, timeout=timeout, **engine_options)
        store = cls(
            engine=engine,
            table=table,
            timeout=timeout,
            create_table=create_table,
            direct_reads=direct_reads,
        )
        store._owned = True
        size = getattr(engine.pool, "size", None)
        if callable(size) and size() >= 2:  # room for the writers beside the held reader
            store._held = store._sqlite
        if engine.dialect.driver in DRIVERS and direct_reads:  # its own pool: it may lease
            # keep up to half the pool between reads (none when it has one connection)
            keep = min(_KEEP, size() // 2) if callable(size) else 0
            get = store._statements.get
            store._direct = DirectReader(engine, get, keep=keep, timeout=timeout, what=_WHAT)
        return store

    @property
    def engine(self) -> AsyncEngine:
        """The engine this store runs its statements on (in AUTOCOMMIT mode)."""
        return self._engine

    @asynccontextmanager
    async def _connect(
        self, *, write: bool = False, opening: bool = False, read: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A connection, with the whole call bounded and driver errors mapped.

        Pooled, except plain reads on aiosqlite (``read=True``), which share one held
        connection: aiosqlite queues their statements on its thread. The deadline
        also shields the call: a cancelled caller waits (at most the timeout) for the
        statement in flight rather than tearing the connection down.
        """
        if not (self._opened or opening):
            await self.open()
        held = self._held if read else None
        with guarded(_WHAT, self.timeout, shield=True):
            try:
                if held is not None:
                    yield await held.reader()
                else:
                    async with (
                        self._writer if write else _NO_LOCK,
                        self._engine.connect() as conn,
                    ):
                        yield conn
            except (StoreUnavailable, TimeoutError, *UNAVAILABLE, sqlite3.Error):
                if held is not None:  # a broken connection: the next read opens a new one
                    await held.drop_reader()
                raise

    async def _run(self, conn: AsyncConnection, name: str, **params: Any) -> tuple[list[Any], int]:
        """Run a prepared statement; return its rows and its row count."""
        if self._sqlite is not None:
            return await self._sqlite.run(conn, name, params)
        result = await conn.execute(self._statements.core[name], params)
        return (list(result.all()) if result.returns_rows else []), result.rowcount

    async def _write(self, name: str, **params: Any) -> int:
        async with self._connect(write=True) as conn:
            return (await self._run(conn, name, **params))[1]

    async def open(self) -> None:
        """Create the table and its indexes unless they exist (``create_table=True``), or
        check that the table exists (``create_table=False``: else :class:`ConfigurationError`).

        Idempotent; the first call of any other method opens the store if needed.
        """
        async with self._open_lock:
            if self._opened:
                return
            async with self._connect(opening=True) as conn:
                await ensure_table(conn, self.table, create=self.create_table)
            self._opened = True

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        """Read one record with one SELECT; a due renewal adds one UPDATE."""
        if self._direct is not None:
            rows = await self._fetch([key])
        elif self._held is not None:  # straight to the held aiosqlite connection
            if not self._opened:
                await self.open()
            rows = await self._held.read_held(self._held.get, (key,))
        else:
            async with self._connect(read=True) as conn:
                rows, _ = await self._run(conn, "get", key=key)
        if not rows:
            return None
        found = from_row(rows[0])
        renewed = renew.apply(found) if renew is not None else None
        if renew is None or renewed is None:
            return found
        async with self._connect() as conn:
            await conn.execute(self._statements.renew, renew_params(renew, [key]))
        return renewed

    async def get_many(
        self, keys: Sequence[str], *, renew: Renewal | None = None
    ) -> list[Record | None]:
        """Read several records with one ``SELECT ... WHERE key IN``; due ones share an UPDATE."""
        if not keys:
            return []
        unique = list(set(keys))
        if self._direct is not None:
            rows = await self._fetch(unique)
        else:
            rows = await self._select_many(unique)
        found = {r.key: r for r in map(from_row, rows)}
        if renew is not None:
            due = {k: r for k, r in ((k, renew.apply(v)) for k, v in found.items()) if r}
            if due:
                async with self._connect() as conn:
                    await conn.execute(self._statements.renew, renew_params(renew, list(due)))
                found.update(due)
        return [found.get(key) for key in keys]

    async def _select_many(self, unique: list[str]) -> list[Any]:
        if self._sqlite is None:
            async with self._connect(read=True) as conn:
                statement = self._statements.get_many
                return list((await conn.execute(statement, {"keys": unique})).all())
        sql = self._sqlite.select_in(len(unique))  # straight on aiosqlite, as get
        if self._held is not None:
            if not self._opened:
                await self.open()
            return await self._held.read_held(sql, unique)
        async with self._connect(read=True) as conn:
            return list(await (await self._sqlite.driver(conn)).execute_fetchall(sql, unique))

    async def _fetch(self, keys: list[str]) -> list[Any]:
        """SELECT the rows of ``keys`` through the bypass (:mod:`.direct`)."""
        if not self._opened:
            await self.open()
        assert self._direct is not None
        return await self._direct.fetch(keys)

    async def insert(self, record: Record) -> None:
        """Insert a new record; a key that exists already is :class:`RecordExists`."""
        try:
            await self._write("insert", **columns(record))
        except StoreError as exc:
            if isinstance(exc.__cause__, sa_exc.IntegrityError | sqlite3.IntegrityError):
                raise RecordExists("a session with this key exists already") from exc.__cause__
            raise

    async def replace(self, record: Record, *, expected_version: int) -> bool:
        """``UPDATE ... WHERE key = :key AND version = :expected``; the row count decides."""
        params = columns(record)
        params.update(where_key=params.pop("key"), expected=expected_version)
        return await self._write("replace", **params) == 1

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Delete one record (if at ``expected_version``, when given); ``True`` if it existed."""
        if expected_version is None:
            return await self._write("delete", key=key) > 0
        return await self._write("delete_at", key=key, version=expected_version) > 0

    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        """Delete the records of ``user_ref`` (but ``keep``) in one statement."""
        if not user_ref:  # names no user: sessions without one are in no index
            return 0
        return await self._write("delete_user", user_ref=user_ref, keep=keep or "")

    async def list_user(self, user_ref: str) -> list[Record]:
        """Return every record of ``user_ref``, oldest first (expired ones included)."""
        if not user_ref:
            return []
        async with self._connect() as conn:
            rows, _ = await self._run(conn, "list_user", user_ref=user_ref)
        return list(map(from_row, rows))

    async def sweep(self, now: float, *, limit: int) -> int:
        """Delete at most ``limit`` expired records: select their keys, then delete those."""
        t = self.table
        expired = t.c.expires_at <= now
        async with self._connect(write=True) as conn:
            keys = (await conn.execute(sa.select(t.c.key).where(expired).limit(limit))).scalars()
            batch = list(keys)
            if not batch:
                return 0
            # Re-checked: a record renewed in between stays.
            return (await conn.execute(sa.delete(t).where(t.c.key.in_(batch), expired))).rowcount

    async def count(self, now: float) -> tuple[int, int]:
        """Count live and expired rows in one statement."""
        t = self.table
        live = sa.func.coalesce(sa.func.sum(sa.case((t.c.expires_at > now, 1), else_=0)), 0)
        async with self._connect() as conn:
            row = (await conn.execute(sa.select(live, sa.func.count()).select_from(t))).one()
        return int(row[0]), int(row[1]) - int(row[0])

    async def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        """Yield every record in key order: one keyset-paged ``SELECT`` per ``batch``."""
        async for rows in scan_rows(self, batch):
            yield list(map(from_row, rows))

    async def wipe(self) -> int:
        """Delete every record in the table; return the count."""
        return await self._write("wipe")

    async def aclose(self) -> None:
        """Dispose the engine if :meth:`from_url` created it; an app's engine is left open."""
        if self._sqlite is not None:
            await self._sqlite.drop_reader()
        if self._direct is not None:
            await self._direct.aclose()
        if self._owned:
            await self._engine.dispose()
