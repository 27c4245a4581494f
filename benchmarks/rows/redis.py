"""Redis rows: the machine's Redis (127.0.0.1:6379) and a 3-master Redis Cluster started
from ``redis-server`` on spare loopback ports for the duration of its rows.

Every row keeps its keys under a prefix of its own and deletes them afterwards.
Set-up writes the sessions in bulk (a pipeline): asyncsess's records are made
by ``SessionManager.create`` and written by the store's own ``insert``; the
peers' entries are written in the exact format each library reads (its own
serializer, key prefix and value layout, as its ``write``/``save`` would), so
10,000 sessions per row take a fraction of a second.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp_session.redis_storage import RedisStorage
from fastapi_users import BaseUserManager, UUIDIDMixin
from fastapi_users.authentication.strategy.redis import RedisStrategy
from fastapi_users.db import BaseUserDatabase
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from starsessions import JsonSerializer, generate_session_id
from starsessions.stores.redis import RedisStore

from tests.redis_cluster import redis_cluster

from ..harness import Prepared, Row
from .common import (
    SharedServer,
    asyncsess_row,
    blob,
    floor_record,
    insert_each,
    key_of,
    new_tokens,
    user_data,
    warmed,
)
from .peers import LIFETIME, User, aiohttp_requests, starsessions_load

URL = "redis://127.0.0.1:6379"
SERVERS: dict[str, dict[str, Any]] = {"redis": {}, "redis_cluster": {}}


def unique_prefix(row: str) -> str:
    return f"asyncsess-bench:{row}:{uuid.uuid4().hex[:12]}:"


async def server_info(client: Redis | RedisCluster, store: str) -> None:
    """Record the server's version in ``SERVERS``."""
    info: Any = await client.info("server")
    if isinstance(client, RedisCluster):  # one answer per node
        info = next(iter(info.values())) if "redis_version" not in info else info
    SERVERS[store]["redis_version"] = info.get("redis_version")
    SERVERS[store]["where"] = (
        "3-master Redis Cluster (redis-server, no replicas) on loopback"
        if store == "redis_cluster"
        else URL
    )


async def set_all(client: Redis | RedisCluster, items: Sequence[tuple[str, bytes | str]]) -> None:
    """SET every (key, value) with the same expiry, pipelined (one round trip per node)."""
    for start in range(0, len(items), 5000):
        pipe: Any = client.pipeline(transaction=False)  # a Pipeline or a ClusterPipeline
        for key, value in items[start : start + 5000]:
            pipe.set(key, value, ex=LIFETIME)
        await pipe.execute()


async def unlink_all(client: Redis | RedisCluster, keys: Sequence[str]) -> None:
    """Delete ``keys`` (pipelined; a cluster pipeline routes each to its node)."""
    for start in range(0, len(keys), 5000):
        pipe: Any = client.pipeline(transaction=False)
        for key in keys[start : start + 5000]:
            pipe.execute_command("UNLINK", key)
        await pipe.execute()


@contextmanager
def _cluster() -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory(prefix="asyncsess-bench-cluster-") as root,
        redis_cluster(Path(root)) as url,
    ):
        yield url


CLUSTER = SharedServer(_cluster)


# -- asyncsess ---------------------------------------------------------------------


@asynccontextmanager
async def redis_asyncsess(n: int, **options: Any) -> AsyncIterator[Prepared]:
    """asyncsess on the machine's Redis; ``options`` go to ``asyncsess_row`` (the manager)."""
    store_options = {"prefix": unique_prefix("asyncsess")}
    async with asyncsess_row(
        URL, n, write=insert_each, store_options=store_options, **options
    ) as prepared:
        yield prepared


@asynccontextmanager
async def redis_near(n: int) -> AsyncIterator[Prepared]:
    """asyncsess with the near cache on (room for every session, its channel running),
    every session validated once first: a validate answers from process memory while
    Redis's invalidations say nothing changed."""
    async with redis_asyncsess(n, near_cache=2 * n, background=True) as prepared:
        yield await warmed(prepared)


@asynccontextmanager
async def cluster_near(n: int) -> AsyncIterator[Prepared]:
    """As :func:`redis_near`, on the cluster (one channel per primary)."""
    async with cluster_asyncsess(n, near_cache=2 * n, background=True) as prepared:
        yield await warmed(prepared)


@asynccontextmanager
async def cluster_asyncsess(n: int, **options: Any) -> AsyncIterator[Prepared]:
    async with CLUSTER.use() as url:
        client = RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
        try:
            await server_info(client, "redis_cluster")
        finally:
            await client.aclose()
        prefix = unique_prefix("asyncsess")
        async with asyncsess_row(
            url, n, write=insert_each, store_options={"prefix": prefix}, **options
        ) as prepared:
            yield prepared


# -- floors: a bare GET of the token's SHA-256 -----------------------------------------


@asynccontextmanager
async def _floor(client: Redis | RedisCluster, n: int) -> AsyncIterator[Prepared]:
    prefix = unique_prefix("floor")
    tokens = new_tokens(n)
    keys = [prefix + key_of(t) for t in tokens]
    values = [blob(floor_record(token, i)) for i, token in enumerate(tokens)]
    await set_all(client, list(zip(keys, values, strict=True)))
    get = client.get

    async def lookup(token: str) -> object:
        return await get(prefix + hashlib.sha256(token.encode()).hexdigest())

    try:
        yield Prepared(lookup, tokens)
    finally:
        await unlink_all(client, keys)


@asynccontextmanager
async def redis_floor(n: int) -> AsyncIterator[Prepared]:
    """``redis.asyncio`` GET (default client settings) of a value the size of asyncsess's."""
    client = Redis.from_url(URL)
    try:
        await server_info(client, "redis")
        async with _floor(client, n) as prepared:
            yield prepared
    finally:
        await client.aclose()


@asynccontextmanager
async def cluster_floor(n: int) -> AsyncIterator[Prepared]:
    """``redis.asyncio.cluster.RedisCluster`` GET (default client settings)."""
    async with CLUSTER.use() as url:
        client = RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
        try:
            async with _floor(client, n) as prepared:
                yield prepared
        finally:
            await client.aclose()


# -- peers -------------------------------------------------------------------------


@asynccontextmanager
async def starsessions_redis(n: int) -> AsyncIterator[Prepared]:
    """starsessions ``RedisStore``: what its middleware does per request to load a session
    (:func:`.peers.starsessions_load`). Entries are written as ``SessionHandler.save``
    writes them (``store.prefix(id)`` -> the serializer's JSON with ``__metadata__``),
    pipelined."""
    client = Redis.from_url(URL)
    store = RedisStore(connection=client, prefix=unique_prefix("starsessions"))
    serializer = JsonSerializer()
    ids = [generate_session_id() for _ in range(n)]
    now = time.time()
    meta = {"lifetime": LIFETIME, "created": now, "last_access": now}
    await set_all(client, [
        (store.prefix(sid), serializer.serialize({"user_id": f"user-{i}", **user_data(i),
                                                  "__metadata__": meta}))
        for i, sid in enumerate(ids)
    ])  # fmt: skip
    try:
        yield Prepared(starsessions_load(store, serializer), ids)
    finally:
        await unlink_all(client, [store.prefix(sid) for sid in ids])
        await client.aclose()


@asynccontextmanager
async def aiohttp_session_redis(n: int) -> AsyncIterator[Prepared]:
    """aiohttp-session ``RedisStorage.load_session(request)``, on a request carrying the
    session cookie (:func:`.peers.aiohttp_requests`). Entries are written as
    ``save_session`` writes them (``{cookie_name}_{key}`` -> JSON of ``{"created",
    "session"}``), pipelined."""
    client = Redis.from_url(URL)
    cookie = f"AIOHTTP_SESSION_{uuid.uuid4().hex[:12]}"  # also its key prefix in Redis
    storage = RedisStorage(client, cookie_name=cookie, max_age=LIFETIME)
    ids = [uuid.uuid4().hex for _ in range(n)]  # its default key_factory
    now = int(time.time())
    keys = [f"{cookie}_{key}" for key in ids]
    await set_all(client, [
        (k, json.dumps({"created": now, "session": {"user_id": f"user-{i}", **user_data(i)}}))
        for i, k in enumerate(keys)
    ])  # fmt: skip
    requests = aiohttp_requests(cookie, ids)

    async def load(key: str) -> object:
        return await storage.load_session(requests[key])  # empty (falsy) when unknown

    try:
        yield Prepared(load, ids)
    finally:
        await unlink_all(client, keys)
        await client.aclose()


class DictUserDatabase(BaseUserDatabase[User, uuid.UUID]):
    """fastapi-users' user database interface over a ``dict``: the cheapest it allows."""

    def __init__(self, users: dict[uuid.UUID, User]) -> None:
        self.users = users

    async def get(self, id: uuid.UUID) -> User | None:
        return self.users.get(id)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    pass


@asynccontextmanager
async def fastapi_users_redis(n: int) -> AsyncIterator[Prepared]:
    """fastapi-users ``RedisStrategy.read_token(token, user_manager)``.

    Its read path always loads the user (``user_manager.get`` -> the user
    database's ``get``); here the cheapest database it allows, a ``dict`` behind
    ``BaseUserDatabase``, so the row is its Redis GET plus an in-process lookup.
    Tokens are written as ``write_token`` writes them (``{prefix}{token}`` ->
    the user id, ``decode_responses=True`` as its docs set up), pipelined.
    """
    users = {u.id: u for u in (User(uuid.uuid4(), f"user-{i}@example.com", "x") for i in range(n))}
    manager = UserManager(DictUserDatabase(users))
    client = Redis.from_url(URL, decode_responses=True)
    prefix = unique_prefix("fastapi-users")
    strategy: RedisStrategy[User, uuid.UUID] = RedisStrategy(client, LIFETIME, key_prefix=prefix)
    tokens = [secrets.token_urlsafe() for _ in range(n)]
    await set_all(client, [(prefix + t, str(uid)) for t, uid in zip(tokens, users, strict=True)])

    async def read(token: str) -> object:
        return await strategy.read_token(token, manager)

    try:
        yield Prepared(read, tokens)
    finally:
        await unlink_all(client, [prefix + t for t in tokens])
        await client.aclose()


ROWS = [
    Row("redis", "asyncsess (sealed)", "asyncsess", redis_asyncsess),
    Row(
        "redis",
        "asyncsess (sealed, decode_cache=0)",  # every validate decrypts its record
        "asyncsess",
        partial(redis_asyncsess, decode_cache=0),
    ),
    Row("redis", "asyncsess (sealed, near_cache)", "asyncsess", redis_near),  # issue 13
    Row("redis", "redis.asyncio GET", "floor", redis_floor),
    Row("redis", "starsessions RedisStore", "peer", starsessions_redis),
    Row("redis", "aiohttp-session RedisStorage", "peer", aiohttp_session_redis),
    Row("redis", "fastapi-users RedisStrategy+user(dict)", "peer", fastapi_users_redis),
    Row("redis_cluster", "asyncsess (sealed)", "asyncsess", cluster_asyncsess),
    Row("redis_cluster", "asyncsess (sealed, near_cache)", "asyncsess", cluster_near),
    Row("redis_cluster", "redis.asyncio RedisCluster GET", "floor", cluster_floor),
]
