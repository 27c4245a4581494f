"""Reading every record of an :class:`~asyncsess.stores.sql.SQLStore` (``scan``).

Keyset pages: ``SELECT ... WHERE key > :after ORDER BY key LIMIT :batch``,
each one statement on the primary key's index, however large the table.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from .store import SQLStore

__all__ = ["scan_rows"]


async def scan_rows(store: SQLStore, batch: int) -> AsyncGenerator[Sequence[Sequence[Any]]]:
    """Yield the rows of ``store``'s table in key order, at most ``batch`` at a time."""
    t = store.table
    page = sa.select(t).where(t.c.key > sa.bindparam("after")).order_by(t.c.key).limit(batch)
    after = ""
    while True:
        async with store._connect() as conn:
            rows = (await conn.execute(page, {"after": after})).all()
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = rows[-1][0]
