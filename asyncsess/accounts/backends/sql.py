"""SQL users on SQLAlchemy Core: one table, by default in the sessions' database.

The table is defined on :data:`metadata` (add it to your Alembic
``target_metadata``); :func:`users_table` builds it under another name (both
from :mod:`asyncsess.stores.sql.schema`, beside the sessions table); the engine
plumbing is the SQL store's (:mod:`asyncsess.stores.sql.engine`). Every
call is one statement in AUTOCOMMIT mode; a duplicate username is refused by
the table's unique constraint (so two concurrent ``create_user`` calls of one
name cannot both win) and becomes :class:`~asyncsess.UserExists`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Final, Self

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ...exceptions import ConfigurationError, UserExists
from ...stores._timeout import check_timeout
from ...stores.sql.engine import autocommit, engine_from_url, ensure_table, guarded
from ...stores.sql.schema import DEFAULT_USERS_TABLE as DEFAULT_TABLE
from ...stores.sql.schema import users_metadata as metadata
from ...stores.sql.schema import users_table
from ...stores.sql.store import SQLStore
from ..user import UserRecord
from . import UserStore

__all__ = ["DEFAULT_TABLE", "SQLUsers", "metadata", "users_table"]

_WHAT: Final = "the accounts database"


class SQLUsers(UserStore):
    """Users in one SQL table through an :class:`AsyncEngine` (never disposed if given)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float | timedelta = 5.0,
        create_table: bool = True,
    ) -> None:
        self._engine = autocommit(engine)
        self._timeout = check_timeout(timeout, "accounts")
        self._create = create_table
        self._owned = False
        self.table = (
            metadata.tables[table] if table == DEFAULT_TABLE else users_table(sa.MetaData(), table)
        )

    @classmethod
    def create(
        cls,
        target: object,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float | timedelta = 5.0,
        create_table: bool = True,
        **engine_options: Any,
    ) -> Self:
        """From a URL (own engine), a SQLStore (its engine) or an AsyncEngine."""
        if isinstance(target, str):
            engine = engine_from_url(
                target, timeout=check_timeout(timeout, "accounts"), **engine_options
            )
        elif engine_options:
            raise ConfigurationError("engine options only apply when accounts are given a URL")
        elif isinstance(target, SQLStore):
            engine = target.engine
        elif isinstance(target, AsyncEngine):
            engine = target
        else:
            raise ConfigurationError(f"not an SQL target: {type(target).__name__}")
        users = cls(engine, table=table, timeout=timeout, create_table=create_table)
        users._owned = isinstance(target, str)
        return users

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        with guarded(_WHAT, self._timeout):
            async with self._engine.connect() as conn:
                yield conn

    async def _rowcount(self, statement: sa.Executable) -> int:
        async with self._connect() as conn:
            return (await conn.execute(statement)).rowcount

    async def open(self) -> None:
        """Create the table unless it exists (``create_table=True``), or check that it
        exists (``create_table=False``: else :class:`~asyncsess.ConfigurationError`)."""
        async with self._connect() as conn:
            await ensure_table(conn, self.table, create=self._create)

    async def insert(self, record: UserRecord) -> None:
        """INSERT; the unique constraint refuses a taken username."""
        values = {
            "id": record.id,
            "username": record.username,
            "password_hash": record.password_hash,
            "created_at": record.created_at,
        }
        async with self._connect() as conn:
            try:
                await conn.execute(sa.insert(self.table).values(**values))
            except sa_exc.IntegrityError as exc:
                raise UserExists("a user with this username exists already") from exc

    async def _one(self, where: sa.ColumnElement[bool]) -> UserRecord | None:
        t = self.table
        stmt = sa.select(t.c.id, t.c.username, t.c.password_hash, t.c.created_at)
        async with self._connect() as conn:
            row = (await conn.execute(stmt.where(where))).first()
        return None if row is None else UserRecord(row[0], row[1], row[2], float(row[3]))

    async def get(self, username: str) -> UserRecord | None:
        """SELECT by username."""
        return await self._one(self.table.c.username == username)

    async def get_by_id(self, user_id: str) -> UserRecord | None:
        """SELECT by id."""
        return await self._one(self.table.c.id == user_id)

    async def set_hash(self, user_id: str, old: str, new: str) -> bool:
        """UPDATE ... WHERE id = :id AND password_hash = :old."""
        t = self.table
        stmt = sa.update(t).where(t.c.id == user_id, t.c.password_hash == old)
        return await self._rowcount(stmt.values(password_hash=new)) == 1

    async def delete(self, user_id: str) -> bool:
        """DELETE by id."""
        t = self.table
        return await self._rowcount(sa.delete(t).where(t.c.id == user_id)) > 0

    async def count(self) -> int:
        """SELECT count(*)."""
        async with self._connect() as conn:
            found = await conn.scalar(sa.select(sa.func.count()).select_from(self.table))
        return int(found or 0)

    async def wipe(self) -> int:
        """DELETE every row."""
        return await self._rowcount(sa.delete(self.table))

    async def aclose(self) -> None:
        """Dispose of the engine if it was made from a URL."""
        owned, self._owned = self._owned, False
        if owned:
            await self._engine.dispose()
