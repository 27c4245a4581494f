"""SQL rows: SQLite (a file in a temporary directory), PostgreSQL and MariaDB on loopback.

Every row on a server works in tables of its own, dropped afterwards. Set-up
writes the sessions in bulk (one ``executemany``): asyncsess's records are made
by ``SessionManager.create`` and inserted into the store's own table; the
floors read a table of the same schema (``asyncsess.stores.sql.sessions_table``)
holding records of the same size; fastapi-users' users and access tokens are
inserted into its own ORM tables (the exact rows its ``create`` would write).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiosqlite
import asyncmy
import asyncpg
import sqlalchemy as sa
from fastapi_users import BaseUserManager, UUIDIDMixin
from fastapi_users.authentication.strategy.db import DatabaseStrategy
from fastapi_users.password import PasswordHelper
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users_db_sqlalchemy.access_token import (
    SQLAlchemyAccessTokenDatabase,
    SQLAlchemyBaseAccessTokenTable,
)
from fastapi_users_db_sqlalchemy.generics import GUID
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from asyncsess import Store
from asyncsess.stores.base import Record
from asyncsess.stores.sql import SQLStore, sessions_table

from ..harness import Prepared, Row
from .common import asyncsess_row, floor_record, key_of, new_tokens, warmed

POSTGRESQL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MARIADB = "mysql+asyncmy://root@127.0.0.1:3306/test"
LIFETIME = 3600  # seconds: asyncsess's default idle timeout, given to fastapi-users
RUN = uuid.uuid4().hex[:8]  # this process's table names
SERVERS: dict[str, dict[str, Any]] = {"sqlite": {}, "postgresql": {}, "mariadb": {}}


def unique_table(row: str) -> str:
    return f"asyncsess_bench_{row}_{uuid.uuid4().hex[:8]}"


def sqlite_url(root: str, name: str) -> str:
    return f"sqlite+aiosqlite:///{os.path.join(root, name)}"


def pool_size(url: str) -> tuple[int, int]:
    """The (kept, most) connections of the pool asyncsess's SQL store has for ``url``."""
    store = SQLStore.from_url(url)  # builds the engine and its pool: no connection yet
    pool: Any = store.engine.sync_engine.pool
    return pool.size(), pool.size() + max(getattr(pool, "_max_overflow", 0), 0)


async def bulk_insert(store: Store, records: Sequence[Record]) -> None:
    """INSERT ``records`` into the SQL store's own table, with one ``executemany``."""
    assert isinstance(store, SQLStore)
    await store.open()  # creates the table
    columns = [c.name for c in store.table.c]
    engine = store.engine.execution_options(isolation_level="SERIALIZABLE")  # one transaction
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(store.table), [{c: getattr(r, c) for c in columns} for r in records]
        )


async def drop(url: str, *tables: sa.Table) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for table in tables:
                await conn.run_sync(table.drop, checkfirst=True)
    finally:
        await engine.dispose()


# -- asyncsess ---------------------------------------------------------------------


@asynccontextmanager
async def sqlite_asyncsess(n: int, **options: Any) -> AsyncIterator[Prepared]:
    """``options``: ``direct_reads`` for the store, the rest for ``asyncsess_row``."""
    store_options = {k: options.pop(k) for k in ("direct_reads",) if k in options}
    with tempfile.TemporaryDirectory(prefix="asyncsess-bench-") as root:
        async with asyncsess_row(
            sqlite_url(root, "s.db"), n, write=bulk_insert, store_options=store_options, **options
        ) as prepared:
            yield prepared


@asynccontextmanager
async def _server_asyncsess(url: str, n: int, **options: Any) -> AsyncIterator[Prepared]:
    table = unique_table("asyncsess")
    store_options = {
        "table": table,
        **{k: options.pop(k) for k in ("direct_reads",) if k in options},
    }
    try:
        async with asyncsess_row(
            url, n, write=bulk_insert, store_options=store_options, **options
        ) as prepared:
            yield prepared
    finally:
        await drop(url, sessions_table(sa.MetaData(), table))


@asynccontextmanager
async def postgresql_asyncsess(n: int, **options: Any) -> AsyncIterator[Prepared]:
    async with _server_asyncsess(POSTGRESQL, n, **options) as prepared:
        yield prepared


@asynccontextmanager
async def postgresql_near(n: int) -> AsyncIterator[Prepared]:
    """asyncsess with the near cache on (room for every session, its channel running),
    every session validated once first: a validate answers from process memory while the
    table's trigger notifies no change."""
    async with postgresql_asyncsess(n, near_cache=2 * n, background=True) as prepared:
        yield await warmed(prepared)


@asynccontextmanager
async def mariadb_asyncsess(n: int, **options: Any) -> AsyncIterator[Prepared]:
    async with _server_asyncsess(MARIADB, n, **options) as prepared:
        yield prepared


def _bypass_off(store: str, row: Callable[..., Any]) -> Row:
    """Issue 12, item 5: the row with the driver bypass off, beside the default row."""
    name = "asyncsess (sealed, direct_reads=False)"
    return Row(store, name, "asyncsess", partial(row, direct_reads=False))


# -- floors: the bare driver, one SELECT by key ----------------------------------------


@asynccontextmanager
async def floor_table(url: str, n: int) -> AsyncIterator[tuple[sa.Table, list[str]]]:
    """A table of asyncsess's schema holding ``n`` records of asyncsess's size; dropped after."""
    table = sessions_table(sa.MetaData(), unique_table("floor"))
    tokens = new_tokens(n)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.create)
            records = [floor_record(token, i) for i, token in enumerate(tokens)]
            columns = [c.name for c in table.c]
            await conn.execute(
                sa.insert(table), [{c: getattr(r, c) for c in columns} for r in records]
            )
    finally:
        await engine.dispose()
    try:
        yield table, tokens
    finally:
        await drop(url, table)


def select_sql(table: sa.Table, quote: str, placeholder: str) -> str:
    columns = ", ".join(f"{quote}{c.name}{quote}" for c in table.c)
    return (
        f"SELECT {columns} FROM {quote}{table.name}{quote} WHERE {quote}key{quote} = {placeholder}"
    )


@asynccontextmanager
async def sqlite_floor(n: int) -> AsyncIterator[Prepared]:
    """aiosqlite ``execute_fetchall`` on one connection (WAL, as asyncsess sets)."""
    with tempfile.TemporaryDirectory(prefix="asyncsess-bench-") as root:
        path = os.path.join(root, "floor.db")
        async with floor_table(sqlite_url(root, "floor.db"), n) as (table, tokens):
            sql = select_sql(table, '"', "?")
            async with aiosqlite.connect(path) as conn:
                await conn.execute("PRAGMA journal_mode=WAL")
                SERVERS["sqlite"]["sqlite_version"] = sqlite3.sqlite_version
                SERVERS["sqlite"]["where"] = "a file in a temporary directory (WAL)"

                async def lookup(token: str) -> object:
                    return await conn.execute_fetchall(sql, (key_of(token),))

                yield Prepared(lookup, tokens)


@asynccontextmanager
async def postgresql_floor(n: int) -> AsyncIterator[Prepared]:
    """asyncpg ``Pool.fetchrow`` with asyncsess's pool size (SQLAlchemy's default)."""
    kept, most = pool_size(POSTGRESQL)
    async with floor_table(POSTGRESQL, n) as (table, tokens):
        sql = select_sql(table, '"', "$1")
        dsn = make_url(POSTGRESQL).set(drivername="postgresql").render_as_string(False)
        pool = await asyncpg.create_pool(dsn, min_size=kept, max_size=most)
        try:
            SERVERS["postgresql"]["version"] = await pool.fetchval("SELECT version()")
            SERVERS["postgresql"]["where"] = "127.0.0.1:5432"
            fetchrow = pool.fetchrow

            async def lookup(token: str) -> object:
                return await fetchrow(sql, key_of(token))

            yield Prepared(lookup, tokens)
        finally:
            await pool.close()


@asynccontextmanager
async def mariadb_floor(n: int) -> AsyncIterator[Prepared]:
    """asyncmy: one ``SELECT`` on a pooled connection (autocommit, asyncsess's pool size)."""
    kept, most = pool_size(MARIADB)
    async with floor_table(MARIADB, n) as (table, tokens):
        sql = select_sql(table, "`", "%s")
        url = make_url(MARIADB)
        pool = await asyncmy.create_pool(
            host=url.host, port=url.port, user=url.username, password=url.password or "",
            db=url.database, minsize=kept, maxsize=most, autocommit=True,
        )  # fmt: skip
        try:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT version()")
                SERVERS["mariadb"]["version"] = (await cur.fetchone())[0]
                SERVERS["mariadb"]["where"] = "127.0.0.1:3306"

            async def lookup(token: str) -> object:
                async with pool.acquire() as conn, conn.cursor() as cur:
                    await cur.execute(sql, (key_of(token),))
                    return await cur.fetchone()

            yield Prepared(lookup, tokens)
        finally:
            pool.close()
            await pool.wait_closed()


# -- peer: fastapi-users' DatabaseStrategy -----------------------------------------------


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    __tablename__ = f"asyncsess_bench_fu_user_{RUN}"


class AccessToken(SQLAlchemyBaseAccessTokenTable[uuid.UUID], Base):
    __tablename__ = f"asyncsess_bench_fu_token_{RUN}"
    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey(f"{User.__tablename__}.id", ondelete="cascade"), nullable=False
    )


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    pass


@asynccontextmanager
async def _fastapi_users(engine: AsyncEngine, n: int) -> AsyncIterator[Prepared]:
    """fastapi-users ``DatabaseStrategy.read_token(token, user_manager)``, as each request runs it.

    Per request, as its documented dependencies do: a new ``AsyncSession``, the
    ``SQLAlchemyAccessTokenDatabase`` and ``DatabaseStrategy`` on it, and a
    ``UserManager`` over ``SQLAlchemyUserDatabase`` on the same session. Its read
    path is two SELECTs (the token, then the user it names) in a transaction.
    """
    hashed = PasswordHelper().hash(secrets.token_urlsafe())
    ids = [uuid.uuid4() for _ in range(n)]
    tokens = [secrets.token_urlsafe() for _ in range(n)]  # as its write_token makes them
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        users = [{"id": uid, "email": f"user-{i}@example.com", "hashed_password": hashed,
                  "is_active": True, "is_superuser": False, "is_verified": False}
                 for i, uid in enumerate(ids)]  # fmt: skip
        await conn.execute(sa.insert(User), users)
        rows = [
            {"token": t, "user_id": uid, "created_at": now}
            for t, uid in zip(tokens, ids, strict=True)
        ]
        await conn.execute(sa.insert(AccessToken), rows)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def read(token: str) -> object:
        async with sessions() as session:
            strategy: DatabaseStrategy[User, uuid.UUID, AccessToken] = DatabaseStrategy(
                SQLAlchemyAccessTokenDatabase(session, AccessToken), lifetime_seconds=LIFETIME
            )
            manager = UserManager(SQLAlchemyUserDatabase(session, User))
            return await strategy.read_token(token, manager)

    try:
        yield Prepared(read, tokens)
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)


@asynccontextmanager
async def sqlite_fastapi_users(n: int) -> AsyncIterator[Prepared]:
    with tempfile.TemporaryDirectory(prefix="asyncsess-bench-") as root:
        engine = create_async_engine(sqlite_url(root, "fastapi-users.db"))
        try:
            async with _fastapi_users(engine, n) as prepared:
                yield prepared
        finally:
            await engine.dispose()


@asynccontextmanager
async def postgresql_fastapi_users(n: int) -> AsyncIterator[Prepared]:
    engine = create_async_engine(POSTGRESQL)
    try:
        async with _fastapi_users(engine, n) as prepared:
            yield prepared
    finally:
        await engine.dispose()


FASTAPI_USERS = "fastapi-users DBStrategy + user SELECT"
ROWS = [
    Row("sqlite", "asyncsess (sealed)", "asyncsess", sqlite_asyncsess),
    _bypass_off("sqlite", sqlite_asyncsess),
    Row("sqlite", "aiosqlite execute_fetchall", "floor", sqlite_floor),
    Row("sqlite", FASTAPI_USERS, "peer", sqlite_fastapi_users),
    Row("postgresql", "asyncsess (sealed)", "asyncsess", postgresql_asyncsess),
    _bypass_off("postgresql", postgresql_asyncsess),
    Row("postgresql", "asyncsess (sealed, near_cache)", "asyncsess", postgresql_near),  # issue 13
    Row("postgresql", "asyncpg fetchrow", "floor", postgresql_floor),
    Row("postgresql", FASTAPI_USERS, "peer", postgresql_fastapi_users),
    Row("mariadb", "asyncsess (sealed)", "asyncsess", mariadb_asyncsess),
    _bypass_off("mariadb", mariadb_asyncsess),
    Row("mariadb", "asyncmy SELECT", "floor", mariadb_floor),
]
