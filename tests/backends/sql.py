"""SQL stores: SQLite (a file per test), PostgreSQL and MariaDB on loopback (a table per test).

Server URLs can be overridden with ``ASYNCSESS_TEST_POSTGRESQL_URL`` and
``ASYNCSESS_TEST_MARIADB_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from asyncsess.exceptions import StoreUnavailable
from asyncsess.stores.sql import SQLStore
from benchmarks.soak.servers import PostgresServer

from . import StoreSpec, unavailable

POSTGRESQL_URL = os.environ.get(
    "ASYNCSESS_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("ASYNCSESS_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/test")
_SERVERS = {
    "postgresql": (
        POSTGRESQL_URL,
        "PostgreSQL at 127.0.0.1:5432",
        "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "mariadb": (
        MARIADB_URL,
        "MariaDB at 127.0.0.1:3306",
        "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    ),
}
#: Readiness of each server, probed once per test session.
_ready: dict[str, bool] = {}


async def _probe(url: str, attempts: int = 10) -> bool:
    """Poll the server for up to ~3 s (it may be starting); ``True`` once it answers."""
    store = SQLStore.from_url(url, timeout=1.0)
    try:
        for _ in range(attempts):
            try:
                async with store.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                return True
            except (OSError, sa.exc.SQLAlchemyError, StoreUnavailable):
                await anyio.sleep(0.3)
        return False
    finally:
        await store.aclose()


async def _server_spec(name: str) -> StoreSpec:
    url, what, how = _SERVERS[name]
    if name not in _ready:
        _ready[name] = await _probe(url)
    if not _ready[name]:
        unavailable(what, how)
    return StoreSpec(url, {"table": f"asyncsess_test_{uuid.uuid4().hex[:12]}"})


async def drop_table(url: str, table: str) -> None:
    """Drop a test's table (if it was created) with an engine of its own."""
    store = SQLStore.from_url(url, table=table)
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(store.table.drop, checkfirst=True)
    finally:
        await store.aclose()


@pytest.fixture
def sqlite_store_spec(tmp_path: Path) -> Iterator[StoreSpec]:
    """A SQLite database file of the test's own (a bare sqlite:// URL: aiosqlite is filled in)."""
    yield StoreSpec(f"sqlite:///{tmp_path / 'sessions.db'}")


@pytest.fixture
async def postgresql_store_spec() -> AsyncIterator[StoreSpec]:
    """The loopback PostgreSQL ``test`` database, in a table of the test's own."""
    spec = await _server_spec("postgresql")
    try:
        yield spec
    finally:
        await drop_table(spec.url, spec.options["table"])


@pytest.fixture
async def mariadb_store_spec() -> AsyncIterator[StoreSpec]:
    """The loopback MariaDB ``test`` database, in a table of the test's own."""
    spec = await _server_spec("mariadb")
    try:
        yield spec
    finally:
        await drop_table(spec.url, spec.options["table"])


@pytest.fixture
def private_postgresql() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of the test's own (``initdb``), which it may restart."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        unavailable("PostgreSQL's initdb and pg_ctl", "install the postgresql server package")
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
