"""memory:// and file:// rows."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from asyncsess.stores.file import FileStore

from ..harness import Prepared, Row
from .common import asyncsess_row


@asynccontextmanager
async def memory_asyncsess(n: int) -> AsyncIterator[Prepared]:
    async with asyncsess_row("memory://", n) as prepared:
        yield prepared


@asynccontextmanager
async def memory_floor(n: int) -> AsyncIterator[Prepared]:
    """A dict keyed by the token's SHA-256: the least a hashed in-memory lookup does."""
    table: dict[str, bytes] = {}
    tokens = []
    for i in range(n):
        token = f"token-{i}-" + "x" * 30
        table[hashlib.sha256(token.encode()).hexdigest()] = json.dumps({"i": i}).encode()
        tokens.append(token)

    async def lookup(token: str) -> object:
        return table.get(hashlib.sha256(token.encode()).hexdigest())

    yield Prepared(lookup, tokens)


@asynccontextmanager
async def file_asyncsess(n: int) -> AsyncIterator[Prepared]:
    with tempfile.TemporaryDirectory() as root:
        async with asyncsess_row(FileStore(root, fsync=False), n) as prepared:
            yield prepared


@asynccontextmanager
async def file_floor(n: int) -> AsyncIterator[Prepared]:
    """One ``to_thread`` file read per lookup, by the token's SHA-256."""
    with tempfile.TemporaryDirectory() as root:
        base = Path(root)
        tokens = []
        for i in range(n):
            token = f"token-{i}-" + "x" * 30
            key = hashlib.sha256(token.encode()).hexdigest()
            (base / key[:2]).mkdir(exist_ok=True)
            (base / key[:2] / key).write_bytes(json.dumps({"i": i}).encode())
            tokens.append(token)

        def read(token: str) -> bytes:
            key = hashlib.sha256(token.encode()).hexdigest()
            return (base / key[:2] / key).read_bytes()

        async def lookup(token: str) -> object:
            return await anyio.to_thread.run_sync(read, token)

        yield Prepared(lookup, tokens)


ROWS = [
    Row("memory", "asyncsess", "asyncsess", memory_asyncsess),
    Row("memory", "dict + sha256", "floor", memory_floor),
    Row("file", "asyncsess (sealed)", "asyncsess", file_asyncsess),
    Row("file", "to_thread read", "floor", file_floor),
]
