"""MongoDB rows: the test server of ``tests/backends/mongo.py`` (a MongoDB wire-protocol
server from ``mongoeco``, in memory, in a Python >= 3.13 subprocess; *not* MongoDB), or
the server at ``$ASYNCSESS_TEST_MONGODB_URL`` when that is set.

The server is started by the first row that needs it and stopped after the last.
Every row works in a database of its own, dropped afterwards. asyncsess's
records are made by ``SessionManager.create`` and written by the store's own
``insert`` (from concurrent tasks); the floor's documents, of the same shape
and size, with one ``insert_many``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from asyncsess import Store
from asyncsess.stores.base import Record
from tests.backends.mongo import REQUIREMENT, URL_ENV, provision, wire_server, with_database

from ..harness import Prepared, Row
from .common import SharedServer, asyncsess_row, floor_record, insert_each, key_of, new_tokens

SERVERS: dict[str, dict[str, Any]] = {"mongodb": {}}
TEST_SERVER_SESSIONS = 500


@contextmanager
def _server() -> Iterator[str]:
    if url := os.environ.get(URL_ENV):
        yield url
        return
    python = provision()  # a cached virtualenv with mongoeco[wire], made once
    with (
        tempfile.TemporaryDirectory(prefix="asyncsess-bench-mongo-") as root,
        wire_server(python, Path(root) / "wire-server.log") as url,
    ):
        yield url


SERVER = SharedServer(_server)


async def describe(client: AsyncMongoClient[dict[str, Any]]) -> None:
    """Record what the rows run against in ``SERVERS``."""
    info = SERVERS["mongodb"]
    if os.environ.get(URL_ENV):
        info["server"] = f"the MongoDB server at ${URL_ENV}"
    else:
        info["server"] = (
            "mongoeco's MongoDB wire-protocol server (tests/mongo_wire_server.py, in memory, "
            "Python, loopback): not MongoDB"
        )
        info["mongoeco"] = REQUIREMENT
        info["sessions_per_row"] = TEST_SERVER_SESSIONS
    try:
        build = await client.admin.command("buildInfo")
    except Exception as exc:  # noqa: BLE001 - a test server may not implement it
        info["buildInfo"] = f"unavailable: {type(exc).__name__}"
    else:
        info["buildInfo_version"] = build.get("version")


@asynccontextmanager
async def database() -> AsyncIterator[tuple[str, AsyncMongoClient[dict[str, Any]]]]:
    """The server's URL with a fresh database in its path, and a client; dropped after."""
    name = f"asyncsess_bench_{uuid.uuid4().hex[:12]}"
    async with SERVER.use() as url:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        try:
            if not SERVERS["mongodb"]:
                await describe(client)
            try:
                yield with_database(url, name), client
            finally:
                await client.drop_database(name)
        finally:
            await client.close()


def sessions(n: int) -> int:
    """How many sessions a row sets up: at most 500 on the test server.

    The test server's in-memory engine takes time proportional to a collection's
    size for every insert (about 18 ms per document at 4,000 documents on a
    2-core machine), so 10,000 sessions would take minutes to set up; its
    lookups by ``_id`` do not slow down with size.
    """
    return n if os.environ.get(URL_ENV) else min(n, TEST_SERVER_SESSIONS)


async def insert_then_index(store: Store, records: Sequence[Record]) -> None:
    """``store.insert`` each record before the store is opened: the manager's first
    call creates the indexes once, over the records, rather than updating them per insert."""
    await insert_each(store, records, open_first=False)


@asynccontextmanager
async def mongodb_asyncsess(n: int) -> AsyncIterator[Prepared]:
    async with (
        database() as (url, _),
        asyncsess_row(url, sessions(n), write=insert_then_index, wipe=False) as prepared,
    ):
        yield prepared


@asynccontextmanager
async def mongodb_floor(n: int) -> AsyncIterator[Prepared]:
    """PyMongo async ``find_one({"_id": key})`` (default client) of a document like asyncsess's."""
    async with database() as (url, _):
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        try:
            collection = client.get_default_database()["floor"]
            tokens = new_tokens(sessions(n))
            documents = []
            for i, token in enumerate(tokens):
                r = floor_record(token, i)
                documents.append({
                    "_id": r.key, "user_ref": r.user_ref, "payload": r.payload,
                    "version": r.version, "created_at": r.created_at,
                    "absolute_at": r.absolute_at, "expires_ts": r.expires_at,
                    "expires_at": datetime.fromtimestamp(r.expires_at, UTC),
                })  # fmt: skip
            await collection.insert_many(documents)
            find_one = collection.find_one

            async def lookup(token: str) -> object:
                return await find_one({"_id": key_of(token)})

            yield Prepared(lookup, tokens)
        finally:
            await client.close()


ROWS = [
    Row("mongodb", "asyncsess (sealed)", "asyncsess", mongodb_asyncsess),
    Row("mongodb", "pymongo async find_one", "floor", mongodb_floor),
]
