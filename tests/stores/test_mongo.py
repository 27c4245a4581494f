"""MongoDB-only behaviour: what lands in the documents, indexes, round trips, ownership, faults."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import bson
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

import asyncsess
from asyncsess import SessionManager, StoreError, StoreUnavailable
from asyncsess.stores.base import Record, Renewal
from asyncsess.stores.mongo import MongoStore
from asyncsess.stores.mongo.client import _isolated
from asyncsess.stores.mongo.store import DEFAULT_COLLECTION
from tests.backends import StoreSpec
from tests.backends.mongo import wire_server, with_database
from tests.conftest import SECRET

pytestmark = pytest.mark.anyio

Client = AsyncMongoClient[dict[str, Any]]


class Commands(CommandListener):
    """Record the name of every command a client sends."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass

    def take(self) -> list[str]:
        names, self.names = self.names, []
        return names


@pytest.fixture
def commands() -> Commands:
    return Commands()


@pytest.fixture
async def client(mongodb_server_url: str, commands: Commands) -> AsyncIterator[Client]:
    """An app-owned client, watched by ``commands``."""
    client: Client = AsyncMongoClient(mongodb_server_url, event_listeners=[commands])
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def store(client: Client, mongodb_database: str) -> AsyncIterator[MongoStore]:
    store = MongoStore(client[mongodb_database])
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


def record(key: str = "k" * 64, *, now: float | None = None, idle: float = 600.0) -> Record:
    # Real time, not a fake epoch: the server's TTL index drops documents by the wall clock.
    now = time.time() if now is None else now
    return Record(key, "ref-1", b"\x00sealed\xff", 1, now, now + idle, now + 3600.0)


async def test_documents_reveal_no_token_user_or_data(
    mongodb_store_spec: StoreSpec, client: Client, mongodb_database: str
) -> None:
    store = asyncsess.open_store(mongodb_store_spec.url, **mongodb_store_spec.options)
    user, marker = "alice@example.com", "plaintext-marker-7c1e"
    try:
        async with SessionManager(store, secret=SECRET) as mgr:
            tokens = [await mgr.create(user, data={"note": marker}) for _ in range(3)]
            assert await mgr.validate(tokens[0]) is not None
            rotated = await mgr.rotate(tokens[1])
            assert rotated is not None
            tokens.append(rotated)
    finally:
        await store.aclose()
    docs = [doc async for doc in client[mongodb_database][DEFAULT_COLLECTION].find()]
    assert len(docs) == 3
    for doc in docs:
        raw = bson.encode(doc)
        for secret in (*tokens, user, marker, SECRET):
            assert secret.encode() not in raw
        assert isinstance(doc["payload"], bytes) and isinstance(doc["expires_at"], datetime)


async def test_ttl_and_user_indexes(
    store: MongoStore, client: Client, mongodb_database: str
) -> None:
    coll = client[mongodb_database][DEFAULT_COLLECTION]
    indexes = {tuple(ix["key"]): ix async for ix in await coll.list_indexes()}
    assert indexes[("expires_at",)]["expireAfterSeconds"] == 0
    assert ("user_ref",) in indexes
    await store.open()  # idempotent


async def test_times_round_trip_exactly_and_ttl_date_rounds_up(
    store: MongoStore, client: Client, mongodb_database: str
) -> None:
    rec = record(now=1_800_000_000.123456789)
    await store.insert(rec)
    assert await store.get(rec.key) == rec
    doc = await client[mongodb_database][DEFAULT_COLLECTION].find_one({"_id": rec.key})
    assert doc is not None
    ttl = doc["expires_at"].replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    assert 0 <= ttl.total_seconds() - rec.expires_at < 0.001


async def test_one_round_trip_per_get(store: MongoStore, commands: Commands) -> None:
    rec = record()
    await store.insert(rec)
    now = rec.created_at
    commands.take()
    assert await store.get(rec.key) == rec
    assert commands.take() == ["find"]
    not_due = Renewal(now, now + 300.0, now + 900.0)
    assert await store.get(rec.key, renew=not_due) == rec
    assert commands.take() == ["find"]  # the usual validate: read only
    due = Renewal(now, now + 700.0, now + 900.0)
    renewed = await store.get(rec.key, renew=due)
    assert renewed is not None and renewed.expires_at == now + 900.0
    assert commands.take() == ["find", "update"]  # a due renewal adds one write
    assert await store.get(rec.key) == renewed
    assert await store.get("0" * 64, renew=due) is None
    assert commands.take() == ["find", "find"]
    assert await store.list_user(rec.user_ref) == [renewed]  # a miss does not upsert


async def test_get_many_in_one_query(store: MongoStore, commands: Commands) -> None:
    a, b = record("a" * 64), record("b" * 64, idle=100.0)
    await store.insert(a)
    await store.insert(b)
    commands.take()
    assert await store.get_many([b.key, "c" * 64, a.key]) == [b, None, a]
    assert commands.take() == ["find"]
    now = a.created_at
    got = await store.get_many([a.key, b.key], renew=Renewal(now, now + 300.0, now + 900.0))
    assert got == [a, Renewal(now, now + 300.0, now + 900.0).apply(b)]
    assert commands.take() == ["find", "update"]  # the update only because b was due
    assert await store.get(b.key) == got[1]
    commands.take()
    assert await store.get_many([a.key, b.key], renew=Renewal(now, now + 300.0, now + 900.0))
    assert commands.take() == ["find"]  # nothing due: a single query


async def test_duplicate_key_is_a_store_error(store: MongoStore) -> None:
    await store.insert(record())
    with pytest.raises(StoreError, match="exists") as info:
        await store.insert(record())
    assert isinstance(info.value.__cause__, PyMongoError)


async def test_app_owned_database_and_collection_stay_open(
    client: Client, mongodb_database: str
) -> None:
    db = client[mongodb_database]
    for store in (MongoStore(db, collection="owned"), MongoStore(collection=db["owned"])):
        await store.open()
        await store.insert(record(f"{id(store):064x}"))
        await store.aclose()
        assert (await db.command("ping"))["ok"] == 1
        assert await db["owned"].count_documents({}) >= 1


async def test_from_url_owns_its_client_and_defaults_the_database(
    mongodb_server_url: str, client: Client, mongodb_database: str
) -> None:
    store = MongoStore.from_url(mongodb_server_url, collection=mongodb_database)
    try:
        await store.open()
        await store.insert(record())
        assert await client["asyncsess"][mongodb_database].count_documents({}) == 1
    finally:
        await store.aclose()
        await client["asyncsess"].drop_collection(mongodb_database)
    with pytest.raises(StoreError):  # the store's own client is closed
        await store.get("k" * 64)


async def test_legacy_settings_reach_their_database_and_collection(
    mongodb_server_url: str, client: Client, mongodb_database: str
) -> None:
    """``from_config`` with the replaced manager's keys: the URL query carries the collection."""
    config = {
        "connection_string": mongodb_server_url,
        "db_name": mongodb_database,
        "collection_name": "legacy_sessions",
        "encryption_key": SECRET,
    }
    async with SessionManager.from_config(config) as mgr:
        store = mgr.store
        assert isinstance(store, MongoStore) and store.timeout == 5.0
        token = await mgr.create("alice")
        assert await mgr.validate(token) is not None
    coll = client[mongodb_database]["legacy_sessions"]
    assert await coll.count_documents({}) == 1
    assert await client[mongodb_database][DEFAULT_COLLECTION].count_documents({}) == 0
    url = with_database(mongodb_server_url, mongodb_database)
    url += f"{'&' if '?' in url else '?'}collection=c2&timeout=2.5"
    store = MongoStore.from_url(url, collection="c3")  # a keyword wins over the query
    assert (store.collection.name, store.timeout) == ("c3", 2.5)
    await store.aclose()


def test_bad_options() -> None:
    with pytest.raises(asyncsess.ConfigurationError, match="timeout"):
        MongoStore.from_url("mongodb://127.0.0.1:1/db", timeout=0)
    with pytest.raises(asyncsess.ConfigurationError, match="number of seconds"):
        MongoStore.from_url("mongodb://127.0.0.1:1/db?timeout=soon")
    with pytest.raises(asyncsess.ConfigurationError, match="database"):
        MongoStore()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def closed_port() -> Iterator[int]:
    yield free_port()


# PyMongo leaks the socket of a server check cancelled by close() while it connects
# (PYTHON-5867), which happens when the server is down. Collect it under this filter.
leaky_close = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


async def collect_leaked_sockets() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()  # let the cancelled monitor tasks finish
    gc.collect()


@leaky_close
async def test_unreachable_server_fails_closed_within_the_timeout(closed_port: int) -> None:
    timeout = 0.5
    store = MongoStore.from_url(f"mongodb://127.0.0.1:{closed_port}/db", timeout=timeout)
    try:
        for call in (store.open(), store.get("k" * 64), store.insert(record())):
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match="did not answer") as info:
                await call
            assert time.monotonic() - start < timeout + 1.0
            assert isinstance(info.value.__cause__, PyMongoError)
    finally:
        await store.aclose()
        await collect_leaked_sockets()


@leaky_close
async def test_works_again_once_the_server_is_back(
    closed_port: int, mongodb_python: str, tmp_path: Path
) -> None:
    url = f"mongodb://127.0.0.1:{closed_port}/db?directConnection=true"
    store = MongoStore.from_url(url, timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("k" * 64)
        server = wire_server(mongodb_python, tmp_path / "wire.log", port=closed_port)
        await anyio.to_thread.run_sync(server.__enter__)
        try:
            with anyio.fail_after(10):
                while True:
                    try:
                        assert await store.get("k" * 64) is None
                        break
                    except StoreUnavailable:
                        await anyio.sleep(0.1)
        finally:
            await anyio.to_thread.run_sync(server.__exit__, None, None, None)
    finally:
        await store.aclose()
        await collect_leaked_sockets()


async def test_a_cancelled_call_lets_the_driver_finish() -> None:
    # On Python 3.11 a driver call is never cancelled mid-way (a cancelled
    # asyncio.wait_for can deadlock PyMongo's pool): the caller waits for it, up to a grace.
    done: list[str] = []

    async def op(name: str, seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except BaseException:
            done.append(f"{name} cancelled")
            raise
        done.append(name)
        return name

    with anyio.move_on_after(0.05) as scope:
        await _isolated(op("quick", 0.2), grace=5.0)
    assert scope.cancelled_caught and done == ["quick"]
    with anyio.move_on_after(0.05):
        await _isolated(op("slow", 60.0), grace=0.1)
    await anyio.lowlevel.checkpoint()
    assert done == ["quick", "slow cancelled"]


async def test_accounts_share_the_stores_database(client: Client, mongodb_database: str) -> None:
    """``Accounts(MongoStore(...))`` keeps its users beside the sessions (it used to raise)."""
    store = MongoStore(client[mongodb_database])
    hasher = asyncsess.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    accounts = asyncsess.Accounts(store, hasher=hasher)
    try:
        user = await accounts.create_user("alice", "correct horse battery staple")
        assert await client[mongodb_database]["asyncsess_users"].count_documents({}) == 1
        assert await accounts.authenticate("alice", "correct horse battery staple") == user
    finally:
        await accounts.aclose()
        await store.aclose()
