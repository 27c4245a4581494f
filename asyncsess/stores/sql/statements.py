"""The SQL store's statements and rows: SQLAlchemy Core once, compiled once for aiosqlite.

Every statement is built when the store is, from its table: the same Core
statements run on every dialect through the engine; on aiosqlite the
single-statement calls also get their compiled SQL and parameter order, to
run straight on the driver (see :mod:`.sqlite`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from ..base import Record, Renewal

__all__ = ["FIELDS", "Compiled", "Statements", "columns", "from_row", "renew_params"]

#: The record's fields, in the table's column order.
FIELDS: Final = ("key", "user_ref", "payload", "version", "created_at", "expires_at", "absolute_at")
#: A statement compiled for aiosqlite: its SQL and its parameters' names in order.
Compiled = tuple[str, list[str]]


def from_row(row: Sequence[Any]) -> Record:
    """The record of a row of the sessions table (columns in :data:`FIELDS` order)."""
    return Record(row[0], row[1], bytes(row[2]), *row[3:7])


def columns(record: Record) -> dict[str, Any]:
    """The columns of ``record``, by name."""
    return {field: getattr(record, field) for field in FIELDS}


def renew_params(renew: Renewal, keys: list[str]) -> dict[str, Any]:
    """The parameters of :attr:`Statements.renew` for ``keys``."""
    return {"keys": keys, "now": renew.now, "threshold": renew.threshold, "until": renew.until}


class Statements:
    """The statements of one sessions table: by name (``core``), and the batched read and renewal.

    ``core`` holds ``get``, ``insert``, ``replace``, ``delete``, ``delete_at``,
    ``delete_user``, ``list_user`` and ``wipe``; :meth:`compiled` gives their SQL
    for a dialect that takes it straight.
    """

    def __init__(self, t: sa.Table) -> None:
        b = sa.bindparam
        fields: dict[str, Any] = {c.name: b(c.name) for c in t.c}
        self.core: dict[str, sa.Select[Any] | sa.Insert | sa.Update | sa.Delete] = {
            "get": sa.select(t).where(t.c.key == b("key")),
            "insert": sa.insert(t).values(fields),
            "replace": sa.update(t)
            .where(t.c.key == b("where_key"), t.c.version == b("expected"))
            .values({k: v for k, v in fields.items() if k != "key"}),
            "delete": sa.delete(t).where(t.c.key == b("key")),
            "delete_at": sa.delete(t).where(t.c.key == b("key"), t.c.version == b("version")),
            "delete_user": sa.delete(t).where(t.c.user_ref == b("user_ref"), t.c.key != b("keep")),
            "list_user": sa.select(t).where(t.c.user_ref == b("user_ref")).order_by(t.c.created_at),
            "wipe": sa.delete(t),
        }
        keys: sa.BindParameter[str] = b("keys", expanding=True)
        until = b("until", type_=sa.Double)
        renewed = sa.case((t.c.absolute_at < until, t.c.absolute_at), else_=until)
        self.get_many = sa.select(t).where(t.c.key.in_(keys))
        self.renew = (
            sa.update(t)
            .where(t.c.key.in_(keys))
            .where(t.c.expires_at > b("now", type_=sa.Double))
            .where(t.c.expires_at < b("threshold", type_=sa.Double))
            .where(t.c.expires_at < renewed)
            .values(expires_at=renewed)
        )

    @property
    def get(self) -> sa.Select[Any]:
        """``SELECT`` one row by ``key``."""
        get = self.core["get"]
        assert isinstance(get, sa.Select)
        return get

    def compiled(self, dialect: Dialect) -> dict[str, Compiled]:
        """Each of :attr:`core`'s statements compiled for ``dialect``, positional parameters."""
        out = {}
        for name, statement in self.core.items():
            c = statement.compile(dialect=dialect)
            out[name] = (c.string, list(c.positiontup or ()))
        return out
