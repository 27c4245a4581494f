"""Known answers for what each store keeps at rest: fixed record in, fixed bytes (or
columns, or document) out. A change to any of these formats makes every stored session
unreadable, so it must be deliberate (and come with a migration)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from sqlalchemy.dialects import mysql, postgresql, sqlite

import asyncsess
from asyncsess.stores.base import Record
from asyncsess.stores.file import FileStore
from asyncsess.stores.redis import scripts
from asyncsess.stores.sql import SQLStore
from asyncsess.stores.sql.schema import metadata, users_metadata
from tests.backends import StoreSpec

pytestmark = pytest.mark.anyio

# Times in 2100, so that Redis and MongoDB keep the record while the test reads it.
RECORD = Record(
    key="0f" * 32,
    user_ref="a1" * 32,
    payload=b"\x00\x01sealed\xff",
    version=7,
    created_at=4102444800.25,
    expires_at=4102446600.5,
    absolute_at=4102531200.75,
)
REDIS_VALUE = bytes.fromhex(
    "41ee90cae0080000" "41ee90cbc1100000" "41ee90f510180000" "00000007" "0040"
    + "6131" * 32
    + "00017365616c6564ff"
)  # fmt: skip
FILE_JSON = (
    b'{"u":"' + b"a1" * 32 + b'","v":7,"c":4102444800.25,"e":4102446600.5,'
    b'"a":4102531200.75,"p":"AAFzZWFsZWT/"}'
)
USER_HASH = "3490f80401886d12f3861ec190f5c16419b26345497a92bc4530e22f5d8b4295"  # sha256(user_ref)


def test_redis_packing() -> None:
    assert scripts.pack(RECORD) == REDIS_VALUE
    assert scripts.unpack(RECORD.key, REDIS_VALUE) == RECORD


async def test_redis_keys_and_values(redis_store_spec: StoreSpec) -> None:
    prefix = redis_store_spec.options["prefix"]
    store = asyncsess.open_store(redis_store_spec.url, **redis_store_spec.options)
    client = Redis.from_url(redis_store_spec.url)
    try:
        await store.insert(RECORD)
        record_key = f"{prefix}s:{{{RECORD.key}}}"
        index_key = f"{prefix}u:{{{RECORD.user_ref}}}"
        assert await client.get(record_key) == REDIS_VALUE
        assert await client.pexpiretime(record_key) == math.ceil(RECORD.expires_at * 1000)
        assert await client.zrange(index_key, 0, -1, withscores=True) == [
            (RECORD.key.encode(), RECORD.expires_at)
        ]
        assert await client.pexpiretime(index_key) == math.ceil(RECORD.absolute_at * 1000)
    finally:
        await store.wipe()
        await store.aclose()
        await client.aclose()


COLUMNS = {
    "sqlite": [
        ("key", "VARCHAR(64)", False, True),
        ("user_ref", "VARCHAR(255)", False, False),
        ("payload", "BLOB", False, False),
        ("version", "INTEGER", False, False),
        ("created_at", "DOUBLE", False, False),
        ("expires_at", "DOUBLE", False, False),
        ("absolute_at", "DOUBLE", False, False),
    ],
    "postgresql": [
        ("key", "VARCHAR(64)", False, True),
        ("user_ref", "VARCHAR(255)", False, False),
        ("payload", "BYTEA", False, False),
        ("version", "INTEGER", False, False),
        ("created_at", "DOUBLE PRECISION", False, False),
        ("expires_at", "DOUBLE PRECISION", False, False),
        ("absolute_at", "DOUBLE PRECISION", False, False),
    ],
    "mysql": [
        ("key", "CHAR(64) COLLATE ascii_bin", False, True),
        ("user_ref", "VARCHAR(255) COLLATE utf8mb4_bin", False, False),
        ("payload", "MEDIUMBLOB", False, False),
        ("version", "INTEGER", False, False),
        ("created_at", "DOUBLE", False, False),
        ("expires_at", "DOUBLE", False, False),
        ("absolute_at", "DOUBLE", False, False),
    ],
}
USER_COLUMNS = {
    "sqlite": ["VARCHAR(64)", "VARCHAR(150)", "VARCHAR(512)", "DOUBLE"],
    "postgresql": ["VARCHAR(64)", "VARCHAR(150)", "VARCHAR(512)", "DOUBLE PRECISION"],
    "mysql": ["VARCHAR(64)", "VARCHAR(150) COLLATE utf8mb4_bin", "VARCHAR(512)", "DOUBLE"],
}


DIALECTS: list[sa.Dialect] = [
    sqlite.dialect(),
    postgresql.dialect(),  # type: ignore[no-untyped-call]
    mysql.dialect(),
]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: str(d.name))
def test_sql_schema(dialect: sa.Dialect) -> None:
    sessions = metadata.tables["asyncsess_sessions"]
    got = [(c.name, c.type.compile(dialect=dialect), c.nullable, c.primary_key) for c in sessions.c]
    assert got == COLUMNS[dialect.name]
    assert sorted((i.name, [c.name for c in i.columns]) for i in sessions.indexes) == [
        ("ix_asyncsess_sessions_expires_at", ["expires_at"]),
        ("ix_asyncsess_sessions_user_ref", ["user_ref"]),
    ]
    users = users_metadata.tables["asyncsess_users"]
    assert [c.name for c in users.c] == ["id", "username", "password_hash", "created_at"]
    assert [c.type.compile(dialect=dialect) for c in users.c] == USER_COLUMNS[dialect.name]
    unique = [c for c in users.constraints if isinstance(c, sa.UniqueConstraint)]
    assert [(c.name, [x.name for x in c.columns]) for c in unique] == [
        ("uq_asyncsess_users_username", ["username"])
    ]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def sql_spec(request: pytest.FixtureRequest) -> StoreSpec:
    spec: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return spec


async def test_sql_row(sql_spec: StoreSpec) -> None:
    """The row as the database returns it to a plain ``SELECT *``."""
    spec = sql_spec
    store = asyncsess.open_store(spec.url, **spec.options)
    assert isinstance(store, SQLStore)
    try:
        await store.insert(RECORD)
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.text(f"SELECT * FROM {store.table.name}"))).all()
        assert [tuple(row) for row in rows] == [
            ("0f" * 32, "a1" * 32, b"\x00\x01sealed\xff", 7, 4102444800.25, 4102446600.5,
             4102531200.75)
        ]  # fmt: skip
    finally:
        await store.wipe()
        await store.aclose()


async def test_mongo_document(mongodb_store_spec: StoreSpec) -> None:
    store = asyncsess.open_store(mongodb_store_spec.url, **mongodb_store_spec.options)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_store_spec.url)
    try:
        await store.insert(RECORD)
        collection = client.get_default_database()["asyncsess_sessions"]
        docs = [doc async for doc in collection.find()]
        assert docs == [
            {
                "_id": "0f" * 32,
                "user_ref": "a1" * 32,
                "payload": b"\x00\x01sealed\xff",
                "version": 7,
                "created_at": 4102444800.25,
                "absolute_at": 4102531200.75,
                "expires_ts": 4102446600.5,
                # the TTL index's field: BSON date, ms, rounded up (naive UTC as PyMongo reads it)
                "expires_at": datetime(2100, 1, 1, 0, 30, 0, 500000, tzinfo=UTC).replace(
                    tzinfo=None
                ),
            }
        ]
        assert list(docs[0]) == [
            "_id", "user_ref", "payload", "version", "created_at", "absolute_at", "expires_ts",
            "expires_at",
        ]  # fmt: skip
    finally:
        await store.wipe()
        await store.aclose()
        await client.close()


async def test_file_json_and_layout(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sessions")
    await store.open()
    await store.insert(RECORD)
    root = tmp_path / "sessions"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [f"s/0f/{RECORD.key}", f"u/{USER_HASH[:2]}/{USER_HASH}/{RECORD.key}"]
    raw = await anyio.Path(root / "s" / "0f" / RECORD.key).read_bytes()
    assert raw == FILE_JSON
    assert json.loads(raw)["p"] == "AAFzZWFsZWT/"  # base64 of the payload
