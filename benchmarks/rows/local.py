"""memory:// and file:// rows.

The memory group also holds aiohttp-session's ``EncryptedCookieStorage``: it
keeps no server-side state, its "store" is the cookie itself (the session
JSON, Fernet-encrypted: AES-128-CBC and HMAC-SHA256), so loading a session is
decrypting the cookie: no I/O, like an in-process lookup (and, unlike one,
no way to revoke a session before its cookie expires).

The file rows work in a temporary directory under ``$ASYNCSESS_BENCH_FILE_DIR``,
else under ``/dev/shm`` (tmpfs) where there is one, else the system's temporary
directory; ``SERVERS["file"]`` says which file system it was. Both rows read
records that sit in the page cache whatever the file system; tmpfs spares
their set-up (10,000 sessions are some 30,000 files and directories, which
took 15-30 s on the ext4 disk of the 2-core VM this was written on).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from aiohttp.web import Response
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet
from starsessions import InMemoryStore, JsonSerializer, generate_session_id

from asyncsess.stores.file import FileStore

from ..harness import Prepared, Row
from .common import asyncsess_row, flat_data, user_data
from .peers import LIFETIME, aiohttp_requests, starsessions_load

FILE_DIR_ENV = "ASYNCSESS_BENCH_FILE_DIR"
SERVERS: dict[str, dict[str, str]] = {"file": {}}


def file_parent() -> str:
    """The directory the file rows make their temporary directories in (see above)."""
    if explicit := os.environ.get(FILE_DIR_ENV):
        parent = explicit
    elif os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        parent = "/dev/shm"
    else:
        parent = tempfile.gettempdir()
    SERVERS["file"].update(directory=parent, filesystem=filesystem(parent))
    return parent


def filesystem(path: str) -> str:
    """The type of the file system ``path`` is on (from ``/proc/mounts``), or "unknown"."""
    try:
        with open("/proc/mounts") as mounts:
            entries = [line.split()[1:3] for line in mounts]
    except OSError:
        return "unknown"
    real = os.path.realpath(path)
    found = [(m, t) for m, t in entries if real == m or real.startswith(m.rstrip("/") + "/")]
    return max(found, key=lambda e: len(e[0]))[1] if found else "unknown"


@asynccontextmanager
async def memory_asyncsess(n: int) -> AsyncIterator[Prepared]:
    async with asyncsess_row("memory://", n) as prepared:
        yield prepared


@asynccontextmanager
async def memory_asyncsess_flat(n: int) -> AsyncIterator[Prepared]:
    async with asyncsess_row("memory://", n, data=flat_data) as prepared:
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
async def memory_starsessions(n: int) -> AsyncIterator[Prepared]:
    """starsessions ``InMemoryStore``, loaded as its middleware does per request
    (:func:`.peers.starsessions_load`); sessions written with its own ``write``."""
    store = InMemoryStore()
    serializer = JsonSerializer()
    ids = [generate_session_id() for _ in range(n)]
    now = time.time()
    meta = {"lifetime": LIFETIME, "created": now, "last_access": now}
    for i, sid in enumerate(ids):
        data = {"user_id": f"user-{i}", **user_data(i), "__metadata__": meta}
        await store.write(sid, serializer.serialize(data), lifetime=LIFETIME, ttl=LIFETIME)
    yield Prepared(starsessions_load(store, serializer), ids)


@asynccontextmanager
async def memory_aiohttp_cookie(n: int) -> AsyncIterator[Prepared]:
    """aiohttp-session ``EncryptedCookieStorage.load_session(request)``: the session is
    the cookie (see the module docstring), made by its own ``save_session``; one
    request per cookie (:func:`.peers.aiohttp_requests`)."""
    storage = EncryptedCookieStorage(Fernet(Fernet.generate_key()), max_age=LIFETIME)
    cookies = []
    for i in range(n):
        session = await storage.new_session()
        session.update({"user_id": f"user-{i}", **user_data(i)})
        response = Response()
        await storage.save_session(None, response, session)  # type: ignore[arg-type]
        cookies.append(response.cookies[storage.cookie_name].value)
    requests = aiohttp_requests(storage.cookie_name, cookies)

    async def load(cookie: str) -> object:
        return await storage.load_session(requests[cookie])  # empty (falsy) if it fails

    yield Prepared(load, cookies)


@asynccontextmanager
async def file_asyncsess(n: int) -> AsyncIterator[Prepared]:
    """The directory is removed afterwards (no wipe: faster). Concurrent inserts are
    no faster than ``create`` one by one here: each is a few file system calls."""
    with tempfile.TemporaryDirectory(prefix="asyncsess-bench-", dir=file_parent()) as root:
        async with asyncsess_row(FileStore(root, fsync=False), n, wipe=False) as prepared:
            yield prepared


@asynccontextmanager
async def file_floor(n: int) -> AsyncIterator[Prepared]:
    """One ``to_thread`` file read per lookup, by the token's SHA-256."""
    with tempfile.TemporaryDirectory(prefix="asyncsess-bench-", dir=file_parent()) as root:
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
    Row("memory", "asyncsess (flat data)", "asyncsess", memory_asyncsess_flat),
    Row("memory", "dict + sha256", "floor", memory_floor),
    Row("memory", "starsessions InMemoryStore", "peer", memory_starsessions),
    Row("memory", "aiohttp-session EncryptedCookieStorage", "peer", memory_aiohttp_cookie),
    Row("file", "asyncsess (sealed)", "asyncsess", file_asyncsess),
    Row("file", "to_thread read", "floor", file_floor),
]
