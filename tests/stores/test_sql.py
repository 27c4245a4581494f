"""SQL-store behaviour beyond the conformance suite: round trips, privacy at rest, engines,
schema, faults. Every test hits a real database: SQLite, PostgreSQL and MariaDB.

Run with ``pytest tests/stores/test_sql.py -p tests.backends.sql``.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from anyio.abc import SocketStream
from sqlalchemy.ext.asyncio import create_async_engine

import asyncsess
from asyncsess import SessionManager, StoreError, StoreUnavailable
from asyncsess.stores.base import Record, Renewal
from asyncsess.stores.sql import DEFAULT_TABLE, SQLStore, metadata, sessions_table
from asyncsess.tokens import token_key
from tests.backends import StoreSpec
from tests.conftest import SECRET

pytestmark = pytest.mark.anyio

BACKENDS = ["sqlite", "postgresql", "mariadb"]
NOW = 1_800_000_000.0


@pytest.fixture(params=BACKENDS)
def spec(request: pytest.FixtureRequest) -> StoreSpec:
    found: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return found


@pytest.fixture
async def store(spec: StoreSpec) -> AsyncIterator[SQLStore]:
    # One pooled connection, so a test can look at the very connection the store uses.
    opened = asyncsess.open_store(spec.url, **spec.options, pool_size=1, max_overflow=0)
    assert isinstance(opened, SQLStore)
    try:
        await opened.open()
        yield opened
    finally:
        await opened.aclose()


def record(key: str = "a" * 64, user_ref: str = "u" * 64, **changes: Any) -> Record:
    fields: dict[str, Any] = {
        "payload": b"\x00sealed\xff",
        "version": 1,
        "created_at": NOW,
        "expires_at": NOW + 600,
        "absolute_at": NOW + 3600,
    }
    return Record(key, user_ref, **{**fields, **changes})


@contextmanager
def cursor_executes(store: SQLStore, sql: list[str]) -> Iterator[None]:
    """Append every statement SQLAlchemy hands the driver while the block runs.

    Appended soon, not at once, as asyncpg calls its query loggers: the two stay in order.
    """
    loop = asyncio.get_running_loop()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        loop.call_soon(sql.append, statement)

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        sa.event.remove(store.engine.sync_engine, "before_cursor_execute", before)


class _RecordingCursor:
    """A MySQL driver cursor that notes each statement it executes (its type is sealed)."""

    def __init__(self, cursor: Any, sql: list[str]) -> None:
        self._cursor, self._sql = cursor, sql

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    async def execute(self, query: str, args: Any = None) -> Any:
        self._sql.append(query)
        return await self._cursor.execute(query, args)

    async def __aenter__(self) -> _RecordingCursor:
        await self._cursor.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> Any:
        return await self._cursor.__aexit__(*exc)


@contextmanager
def driver_executes(driver: Any, sql: list[str]) -> Iterator[None]:
    """Append every statement run on a MySQL driver connection's cursors while the block
    runs: SQLAlchemy's and the store's own reads on the driver alike."""
    make_cursor = driver.cursor
    driver.cursor = lambda *args, **kwargs: _RecordingCursor(make_cursor(*args, **kwargs), sql)
    try:
        yield
    finally:
        del driver.cursor


_MARIADB_COUNTERS = sa.text(
    "SHOW SESSION STATUS WHERE Variable_name IN "
    "('Questions', 'Com_select', 'Com_begin', 'Com_commit', 'Com_rollback')"
)


@asynccontextmanager
async def wire(store: SQLStore) -> AsyncIterator[dict[str, Any]]:
    """Every statement that reaches the database on the store's single pooled connection.

    SQLAlchemy's ``begin``/``rollback`` events are no evidence either way here: in
    AUTOCOMMIT mode they mark its bookkeeping, not a call to the DBAPI. So:

    - SQLite: SQLite's own trace of what it runs (an implicit BEGIN included);
    - PostgreSQL: ``before_cursor_execute`` (SQLAlchemy's statements, which asyncpg
      runs as prepared statements, unlogged) plus asyncpg's query logger, which sees
      the store's own reads on the driver and the BEGIN/COMMIT/ROLLBACK of a
      transaction;
    - MariaDB: what the driver connection's cursors execute, plus the server's
      per-session counters.
    """
    seen: dict[str, Any] = {"sql": []}
    async with store.engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
    dialect = store.engine.dialect.name
    if dialect == "sqlite":
        await driver.set_trace_callback(seen["sql"].append)
        try:
            yield seen
        finally:
            await driver.set_trace_callback(None)
    elif dialect == "postgresql":

        def log(query: Any) -> None:
            seen["sql"].append(query.query)

        driver.add_query_logger(log)
        try:
            with cursor_executes(store, seen["sql"]):
                yield seen
        finally:
            await anyio.lowlevel.checkpoint()  # asyncpg calls its loggers soon, not at once
            driver.remove_query_logger(log)
    else:
        async with store.engine.connect() as conn:
            before = {k: v for k, v in await conn.execute(_MARIADB_COUNTERS)}
        with driver_executes(driver, seen["sql"]):
            yield seen
        async with store.engine.connect() as conn:
            after = {k: v for k, v in await conn.execute(_MARIADB_COUNTERS)}
        seen.update({k: int(after[k]) - int(before[k]) for k in before})
        seen["Questions"] -= 1  # the second SHOW


def verbs(sql: list[str]) -> list[str]:
    return [s.lstrip().split()[0].upper() for s in sql]


async def test_get_is_one_statement_without_transaction(store: SQLStore) -> None:
    await store.insert(record())
    assert await store.get("a" * 64) == record()  # warm up: asyncpg prepares, caches compile
    async with wire(store) as seen:
        got = await store.get("a" * 64)
    assert got == record()
    assert verbs(seen["sql"]) == ["SELECT"], seen["sql"]
    if store.engine.dialect.name == "mariadb":
        assert seen["Questions"] == seen["Com_select"] == 1, seen
        assert seen["Com_begin"] == seen["Com_commit"] == seen["Com_rollback"] == 0, seen


async def test_renewal_writes_only_when_due(store: SQLStore) -> None:
    await store.insert(record())
    await store.get_many(["b" * 64, "c" * 64])  # warm up: asyncpg looks up the array type once
    not_due = Renewal(NOW, NOW + 300, NOW + 900)
    async with wire(store) as seen:
        assert await store.get("a" * 64, renew=not_due) == record()
        assert await store.get_many(["a" * 64, "b" * 64], renew=not_due) == [record(), None]
    assert verbs(seen["sql"]) == ["SELECT", "SELECT"], seen["sql"]
    due = Renewal(NOW + 400, NOW + 700, NOW + 1000)
    async with wire(store) as seen:
        renewed = await store.get("a" * 64, renew=due)
    assert renewed == record(expires_at=NOW + 1000)
    assert verbs(seen["sql"]) == ["SELECT", "UPDATE"], seen["sql"]
    assert await store.get("a" * 64) == renewed
    capped = Renewal(NOW + 900, NOW + 1200, NOW + 9000)
    assert await store.get_many(["a" * 64], renew=capped) == [record(expires_at=NOW + 3600)]
    assert await store.get("a" * 64) == record(expires_at=NOW + 3600)


async def test_get_many_is_one_statement(store: SQLStore) -> None:
    for i in range(5):
        await store.insert(record(f"{i:064x}"))
    keys = [f"{i:064x}" for i in (4, 9, 0, 4)]
    await store.get_many(["b" * 64, "c" * 64])  # warm up: asyncpg looks up the array type once
    async with wire(store) as seen:
        found = await store.get_many(keys)
    assert verbs(seen["sql"]) == ["SELECT"], seen["sql"]
    assert found == [record(keys[0]), None, record(keys[2]), record(keys[0])]
    assert await store.get_many([]) == []


async def test_insert_replace_delete_sweep(store: SQLStore) -> None:
    await store.insert(record())
    with pytest.raises(StoreError) as caught:
        await store.insert(record(payload=b"other"))
    assert isinstance(caught.value.__cause__, sa.exc.IntegrityError | sqlite3.IntegrityError)
    assert await store.replace(record(version=2), expected_version=2) is False
    assert await store.replace(record(version=2, payload=b"new"), expected_version=1) is True
    assert await store.get("a" * 64) == record(version=2, payload=b"new")
    big = record("b" * 64, payload=bytes(range(256)) * 1024)  # past MySQL's 64 KiB BLOB
    await store.insert(big)
    assert await store.get("b" * 64) == big
    for i in range(7):
        await store.insert(record(f"{i:064x}", "x" * 64, expires_at=NOW - i))
    assert await store.sweep(NOW - 3, limit=3) == 3
    assert await store.sweep(NOW, limit=10) == 4
    assert await store.sweep(NOW, limit=10) == 0
    assert await store.delete("a" * 64) is True
    assert await store.delete("a" * 64) is False
    assert await store.wipe() == 1


async def test_plaintext_user_ids_are_exact(store: SQLStore) -> None:
    """With privacy mode off user_ref is the user id: up to 255 characters, compared exactly."""
    long_id = "ü" * 255
    await store.insert(record("a" * 64, long_id))
    await store.insert(record("b" * 64, "Alice"))
    await store.insert(record("c" * 64, "alice"))
    assert [r.key for r in await store.list_user(long_id)] == ["a" * 64]
    assert [r.key for r in await store.list_user("alice")] == ["c" * 64]
    assert await store.delete_user("ALICE") == 0
    assert await store.delete_user("Alice") == 1


async def test_nothing_readable_at_rest(spec: StoreSpec) -> None:
    user_id = "alice.liddell@example.org"
    values = ["wonderland-secret-value", "queen-of-hearts-42"]
    store = asyncsess.open_store(spec.url, **spec.options)
    assert isinstance(store, SQLStore)
    mgr = SessionManager(store, secret=SECRET)
    try:
        tokens = [await mgr.create(user_id, {"a": values[0], "b": values[1]}) for _ in range(3)]
        assert await mgr.update(tokens[0], {"a": values[0], "b": values[1], "c": 1})
        rotated = await mgr.rotate(tokens[1])
        assert rotated is not None
        tokens.append(rotated)
        for token in tokens[::2]:
            session = await mgr.validate(token)
            assert session is not None and session.user_id == user_id
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(store.table))).all()
    finally:
        await mgr.aclose()
        await store.aclose()
    assert sorted(row.key for row in rows) == sorted(token_key(t) for t in [*tokens[::2], rotated])
    cells = [v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row]
    for needle in [user_id, *values, *tokens]:
        assert not any(needle.encode() in cell for cell in cells), needle


@pytest.mark.parametrize("isolation", [None, "AUTOCOMMIT"])
async def test_app_engine_is_used_and_never_disposed(
    sqlite_store_spec: StoreSpec, isolation: str | None
) -> None:
    url = sqlite_store_spec.url.replace("sqlite://", "sqlite+aiosqlite://")
    engine = create_async_engine(url, **({"isolation_level": isolation} if isolation else {}))
    disposed: list[object] = []
    sa.event.listen(engine.sync_engine, "engine_disposed", disposed.append)
    try:
        store = SQLStore(engine=engine, table="app_sessions")
        await store.open()
        await store.insert(record())
        assert await store.get("a" * 64) == record()
        await store.aclose()
        assert disposed == []
        assert "isolation_level" not in engine.get_execution_options()  # app's engine untouched
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM app_sessions"))).scalar() == 1
    finally:
        await engine.dispose()
    owned = SQLStore.from_url(url)
    owned_disposed: list[object] = []
    sa.event.listen(owned.engine.sync_engine, "engine_disposed", owned_disposed.append)
    await owned.open()
    await owned.aclose()
    assert len(owned_disposed) == 1


async def test_metadata_exports_table_and_indexes(store: SQLStore) -> None:
    table = metadata.tables[DEFAULT_TABLE]
    assert [c.name for c in table.primary_key] == ["key"]
    indexed = {i.name: [c.name for c in i.columns] for i in table.indexes}
    assert indexed == {
        f"ix_{DEFAULT_TABLE}_user_ref": ["user_ref"],
        f"ix_{DEFAULT_TABLE}_expires_at": ["expires_at"],
    }
    other = sessions_table(sa.MetaData(), "elsewhere")
    assert {i.name for i in other.indexes} == {"ix_elsewhere_user_ref", "ix_elsewhere_expires_at"}
    name = store.table.name

    def reflect(conn: sa.Connection) -> tuple[Any, ...]:
        inspector = sa.inspect(conn)
        return (
            inspector.get_pk_constraint(name)["constrained_columns"],
            {i["name"]: i["column_names"] for i in inspector.get_indexes(name)},
        )

    async with store.engine.connect() as conn:
        pk, indexes = await conn.run_sync(reflect)
    assert pk == ["key"]
    assert indexes == {f"ix_{name}_user_ref": ["user_ref"], f"ix_{name}_expires_at": ["expires_at"]}


@pytest.mark.parametrize("scheme", ["postgresql", "mysql", "mariadb+aiomysql"])
async def test_refused_connection_fails_closed(scheme: str) -> None:
    store = SQLStore.from_url(f"{scheme}://root@127.0.0.1:1/test", timeout=0.5)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            store.open,
            lambda: store.get("a" * 64),
            lambda: store.insert(record()),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            assert time.monotonic() - started < 2.0
            assert caught.value.__cause__ is not None
    finally:
        await store.aclose()


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_silent_server_times_out(scheme: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        store = SQLStore.from_url(f"{scheme}://root@127.0.0.1:{port}/test", timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"within 0\.5 s"):
                await store.get("a" * 64)
            assert 0.4 < time.monotonic() - started < 2.5
        finally:
            await store.aclose()


class Proxy:
    """A TCP relay to a real server that a test can cut and restore."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut = False
        self.opened = 0  # connections relayed so far
        self.scopes: set[anyio.CancelScope] = set()

    async def handle(self, client: SocketStream) -> None:
        async with client:
            if self.cut:
                return
            self.opened += 1
            with anyio.CancelScope() as scope:
                self.scopes.add(scope)
                server = await anyio.connect_tcp("127.0.0.1", self.port)
                async with server, anyio.create_task_group() as tg:
                    tg.start_soon(self.pipe, client, server)
                    await self.pipe(server, client)
                    tg.cancel_scope.cancel()
            self.scopes.discard(scope)

    @staticmethod
    async def pipe(source: SocketStream, sink: SocketStream) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    def sever(self) -> None:
        self.cut = True
        self.drop()

    def drop(self) -> None:
        """Close every relayed connection (as a server restart does); new ones get through."""
        for scope in self.scopes:
            scope.cancel()


@pytest.fixture(params=["postgresql", "mariadb"])
def server_spec(request: pytest.FixtureRequest) -> StoreSpec:
    found: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return found


async def test_works_again_once_the_server_is_back(server_spec: StoreSpec) -> None:
    spec = server_spec
    real = sa.make_url(spec.url)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        proxy = Proxy(real.port or 0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        url = real.set(port=port).render_as_string(hide_password=False)
        store = SQLStore.from_url(url, **spec.options, timeout=2.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, proxy.handle)
            try:
                await store.open()
                await store.insert(record())
                assert await store.get("a" * 64) == record()
                proxy.sever()
                for _ in range(2):  # the pooled connection died; a new one is refused
                    with pytest.raises(StoreUnavailable):
                        await store.get("a" * 64)
                proxy.cut = False
                assert await store.get("a" * 64) == record()
            finally:
                await store.aclose()
                tg.cancel_scope.cancel()


async def test_reads_run_on_kept_connections_and_outlive_a_dropped_one(
    server_spec: StoreSpec,
) -> None:
    """On PostgreSQL and MariaDB reads reuse the connections the store keeps (no new
    connection per read, seen through a relay). A connection the server drops costs no
    failed read: it is replaced."""
    real = sa.make_url(server_spec.url)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        proxy = Proxy(real.port or 0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        url = real.set(port=port).render_as_string(hide_password=False)
        store = SQLStore.from_url(url, **server_spec.options)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, proxy.handle)
            try:
                await store.insert(record())
                assert await store.get("a" * 64) == record()
                opened = proxy.opened
                for _ in range(20):
                    assert await store.get("a" * 64) == record()
                assert proxy.opened == opened, "a read opened a connection"
                proxy.drop()
                await anyio.sleep(0.1)  # the relay closes the sockets
                assert await store.get("a" * 64) == record()
                many = await store.get_many(["a" * 64, "b" * 64, "a" * 64])
                assert many == [record(), None, record()]
            finally:
                await store.aclose()
                tg.cancel_scope.cancel()


async def test_create_table_false_without_the_table_is_a_configuration_error(
    spec: StoreSpec,
) -> None:
    """Sessions and users alike: a missing table is a set-up mistake, not an outage."""
    store = SQLStore.from_url(spec.url, **spec.options, create_table=False)
    try:
        with pytest.raises(asyncsess.ConfigurationError, match="does not exist"):
            await store.open()
        with pytest.raises(asyncsess.ConfigurationError, match="create_table=False"):
            await store.get("k" * 64)
        users = asyncsess.Accounts(
            store.engine, table="asyncsess_test_no_users", create_table=False
        )
        with pytest.raises(asyncsess.ConfigurationError, match="asyncsess_test_no_users"):
            await users.count_users()
    finally:
        await store.aclose()
    with_table = SQLStore.from_url(spec.url, **spec.options)  # creates it
    try:
        await with_table.open()
        migrated = SQLStore.from_url(spec.url, **spec.options, create_table=False)
        try:
            await migrated.open()
            assert await migrated.get("k" * 64) is None
        finally:
            await migrated.aclose()
    finally:
        await with_table.aclose()


async def test_a_failed_sqlite_read_fails_closed_and_the_next_one_recovers(tmp_path: Path) -> None:
    """SQLite reads share one held connection; a read that fails raises (never a guess)
    and drops it, and reads work again once the cause is gone."""
    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'sessions.db'}")
    try:
        await store.insert(record())
        assert await store.get("a" * 64) == record()
        async with store.engine.connect() as conn:
            await conn.run_sync(store.table.drop)
        with pytest.raises(StoreUnavailable, match="no such table"):
            await store.get("a" * 64)
        with pytest.raises(StoreUnavailable, match="no such table"):
            await store.get_many(["a" * 64, "b" * 64])
        async with store.engine.connect() as conn:
            await conn.run_sync(store.table.create)
        await store.insert(record())
        assert await store.get_many(["a" * 64, "b" * 64]) == [record(), None]
        assert await store.get("a" * 64) == record()
    finally:
        await store.aclose()
