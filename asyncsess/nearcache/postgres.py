"""The near cache's channel on PostgreSQL: a trigger's ``NOTIFY`` and one ``LISTEN`` connection.

The sessions table carries a trigger (:mod:`asyncsess.stores.sql.notify`) that
notifies the key of every row updated or deleted, by asyncsess or anything
else. Each manager keeps one connection of its own (taken from the store's
engine, so with its settings, then detached from the pool), named
``asyncsess-nearcache:<table>`` in ``pg_stat_activity``, with asyncpg's
``add_listener`` on the table's channel and on a heartbeat channel of its own.

The heartbeat is a query on that connection that notifies the heartbeat
channel and checks that the trigger is still there and enabled; PostgreSQL
delivers notifications in commit order, so once the heartbeat's comes back,
every change committed before it was sent has been heard. A closed connection
(``pg_terminate_backend``, a restart), a heartbeat late or a trigger gone
tears the link down: the cache is dropped and the link opened again.

When the store opens (and again each time the link opens), a missing trigger
is created if the store creates its schema (``create_table=True``, the
default), under an advisory lock; with ``create_table=False`` it is a
:class:`~asyncsess.ConfigurationError` naming the migration to run.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ..exceptions import ConfigurationError, fail_closed
from ..stores.sql import SQLStore
from ..stores.sql.notify import notify_channel, notify_trigger_name, notify_trigger_sql
from .cache import NearCache
from .channel import ChannelLost, Echo

__all__ = ["NAME", "PostgresChannel"]

#: How the channel's connection names itself (``application_name``), before ``:<table>``.
NAME = "asyncsess-nearcache"
_TRIGGER_IS_ON = (
    "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2"
    " AND tgenabled <> 'D')"
)
_BEAT = _TRIGGER_IS_ON.replace("$1", "$3").replace("$2", "$4") + " FROM pg_notify($1, $2)"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Link:
    """The listening connection, fed by asyncpg's callbacks."""

    nodes = 1

    def __init__(self, cache: NearCache, conn: Any, beats: str, table: str) -> None:
        self.cache, self.conn, self.beats = cache, conn, beats
        self.table, self.trigger = _quoted(table), notify_trigger_name(table)
        self.closed = anyio.Event()
        self.pending = ""
        self.echo: Echo | None = None
        self._n = 0

    def changed(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload:
            self.cache.received(payload)
        else:  # TRUNCATE
            self.cache.invalidations += 1
            self.cache.clear()

    def beat(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.pending and self.echo is not None:
            self.echo(0)

    def terminated(self, _conn: Any) -> None:
        self.closed.set()

    async def watch(self, echo: Echo) -> None:
        self.echo = echo
        await self.closed.wait()
        raise ChannelLost("the LISTEN connection closed")

    async def ping(self, node: int) -> None:
        self._n += 1
        self.pending = str(self._n)
        if not await self.conn.fetchval(_BEAT, self.beats, self.pending, self.table, self.trigger):
            raise ChannelLost(f"the notify trigger on {self.table} is gone or disabled")


class PostgresChannel:
    """Opens the listening connection of one SQL store on PostgreSQL (asyncpg)."""

    def __init__(self, store: SQLStore) -> None:
        self._engine = store.engine
        self._table = store.table.name
        self._creates = store.create_table
        self._timeout = store.timeout
        self._channel = notify_channel(self._table)
        self._beats = f"asyncsess_beat_{secrets.token_hex(8)}"  # this process's own
        self.what = f"PostgreSQL (table {self._table!r})"

    async def _ensure_trigger(self, conn: Any) -> None:
        table, trigger = _quoted(self._table), notify_trigger_name(self._table)
        if await conn.fetchval(_TRIGGER_IS_ON, table, trigger):
            return
        if not self._creates:
            raise ConfigurationError(
                f"the near cache needs the notify trigger on {self._table!r}, and the store "
                "does not create its schema (create_table=False): run "
                f"asyncsess.stores.sql.notify_trigger_sql({self._table!r}) in a migration, "
                "or pass near_cache=0"
            )
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('asyncsess_notify_key'))")
            if not await conn.fetchval(_TRIGGER_IS_ON, table, trigger):
                await conn.execute(notify_trigger_sql(self._table))

    async def prepare(self) -> None:
        """Make sure of the trigger, on a pooled connection (called when the store opens)."""
        with fail_closed, anyio.fail_after(self._timeout):
            async with self._engine.connect() as pooled:
                await self._ensure_trigger((await pooled.get_raw_connection()).driver_connection)

    @asynccontextmanager
    async def open(self, cache: NearCache) -> AsyncIterator[_Link]:
        """Connect, make sure of the trigger, ``LISTEN``; terminate the connection on exit."""
        conn: Any = None
        try:
            with anyio.fail_after(self._timeout):
                pooled = await self._engine.raw_connection()
                conn = pooled.driver_connection
                pooled.detach()  # ours now: never handed back to the pool
                name = f"{NAME}:{self._table}"[:63]
                await conn.execute("SELECT set_config('application_name', $1, false)", name)
                await self._ensure_trigger(conn)
                link = _Link(cache, conn, self._beats, self._table)
                conn.add_termination_listener(link.terminated)
                await conn.add_listener(self._channel, link.changed)
                await conn.add_listener(self._beats, link.beat)
            cache.subscribed()
            yield link
        finally:
            if conn is not None:
                conn.terminate()
