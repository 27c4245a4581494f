"""Helpers shared by the row modules."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager, nullcontext
from typing import Any, Self

import anyio

from asyncsess import SessionManager, Store
from asyncsess.stores.base import Record, Renewal

from ..harness import Prepared

SECRET = secrets.token_urlsafe(32)

Write = Callable[[Store, list[Record]], Awaitable[None]]
"""Writes records made by a :class:`SessionManager` into a store (the rows' bulk set-up)."""
#: Manager options that only make sense on the row's real store, not on the recorder.
_NOT_FOR_THE_TWIN = frozenset({"store_options", "near_cache", "near_cache_ttl"})


def user_data(i: int) -> dict[str, Any]:
    """The data of session ``i`` in every row (asyncsess and peers alike): shaped like a
    real app's (issue 12), nested, with a 32-character CSRF token."""
    return {"role": "admin", "csrf": f"{i:032x}", "theme": "dark", "cart": [1, 2, 3]}


#: The same (the default); rows that name it say so.
nested_data = user_data


def flat_data(i: int) -> dict[str, Any]:
    """Flat data of scalars only (the benchmark's data before issue 12), for comparison rows."""
    return {"role": "member", "i": i}


def new_tokens(n: int) -> list[str]:
    """``n`` tokens shaped like asyncsess's (256 random bits, base64url), for floor rows."""
    return [secrets.token_urlsafe(32) for _ in range(n)]


def key_of(token: str) -> str:
    """What every floor row looks up: the token's SHA-256, in hex (as asyncsess does)."""
    return hashlib.sha256(token.encode()).hexdigest()


def floor_record(token: str, i: int) -> Record:
    """A record the size of the one asyncsess stores for session ``i``, for the floors.

    Its payload is random bytes as long as asyncsess's sealed payload: the JSON
    ``{"u": user_id, "d": data}`` plus 33 bytes of sealing (format byte, key id,
    nonce, tag). The floor reads it; it never opens it.
    """
    plain = json.dumps({"u": f"user-{i}", "d": user_data(i)}, separators=(",", ":"))
    now = time.time()
    return Record(
        key_of(token),
        hashlib.sha256(f"user-{i}".encode()).hexdigest(),
        os.urandom(len(plain) + 33),
        1,
        now,
        now + 3600,
        now + 86400,
    )


def blob(record: Record) -> bytes:
    """One value holding every field of ``record`` (for key-value floors: one GET)."""
    times = (record.created_at, record.expires_at, record.absolute_at)
    fields = [record.user_ref, str(record.version), *map(repr, times)]
    return b"|".join([*(f.encode() for f in fields), record.payload])


class _Recorder(Store):
    """A store that keeps the records it is given, so that they can be written in bulk.

    A manager over it (same secret, same settings) makes exactly the records the
    row's own manager would: the store never interprets a payload.
    """

    def __init__(self) -> None:
        self.records: list[Record] = []

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls()

    async def insert(self, record: Record) -> None:
        self.records.append(record)

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        raise NotImplementedError

    async def replace(self, record: Record, *, expected_version: int) -> bool:
        raise NotImplementedError

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        raise NotImplementedError

    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        raise NotImplementedError

    async def list_user(self, user_ref: str) -> list[Record]:
        raise NotImplementedError

    async def sweep(self, now: float, *, limit: int) -> int:
        raise NotImplementedError

    async def count(self, now: float) -> tuple[int, int]:
        raise NotImplementedError

    def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        raise NotImplementedError

    async def wipe(self) -> int:
        raise NotImplementedError


async def insert_each(
    store: Store, records: Sequence[Record], tasks: int = 32, *, open_first: bool = True
) -> None:
    """Write ``records`` with the store's own ``insert``, from ``tasks`` concurrent tasks.

    ``open_first=False`` leaves opening (creating indexes) to the manager's first
    call, after the records are in, for a store that may insert before it is opened.
    """

    async def worker(offset: int) -> None:
        for record in records[offset::tasks]:
            await store.insert(record)

    if open_first:
        await store.open()
    async with anyio.create_task_group() as tg:
        for offset in range(tasks):
            tg.start_soon(worker, offset)


async def create_sessions(
    mgr: SessionManager,
    n: int,
    write: Write | None,
    options: dict[str, Any],
    data: Callable[[int], dict[str, Any]] = user_data,
) -> list[str]:
    """Create ``n`` sessions with ``create``; return their tokens.

    With ``write``, ``create`` runs on a twin manager (same secret and settings)
    over a recorder, and ``write`` puts its records into ``mgr.store`` in bulk:
    the records are the manager's own, only the writing is batched.
    """
    if write is None:
        return [await mgr.create(f"user-{i}", data(i)) for i in range(n)]
    recorder = _Recorder()
    twin_options = {k: v for k, v in options.items() if k not in _NOT_FOR_THE_TWIN}
    twin = SessionManager(recorder, secret=SECRET, **twin_options)
    tokens = [await twin.create(f"user-{i}", data(i)) for i in range(n)]
    await write(mgr.store, recorder.records)
    return tokens


@asynccontextmanager
async def asyncsess_row(
    store: Store | str,
    n: int,
    *,
    write: Write | None = None,
    wipe: bool = True,
    data: Callable[[int], dict[str, Any]] = user_data,
    background: bool = False,
    **options: Any,
) -> AsyncIterator[Prepared]:
    """asyncsess ``validate`` over ``n`` live sessions (sealed wherever data is at rest).

    ``write`` writes the sessions' records in bulk (see :func:`create_sessions`);
    without it each session is created by ``await mgr.create(...)``. The store
    is wiped afterwards unless ``wipe=False`` (the caller drops it whole). With
    ``background``, the manager's background tasks run (``mgr.running()``: the near
    cache's channel needs it).

    Every session is validated once before the row is measured (:func:`warm`), as a
    running app's sessions have been: otherwise the first 1-task sample, which reaches
    only the first few thousand tokens, would time each record's first opening, which
    none of the later samples sees. The ``decode_cache=0`` rows show what opening
    costs on every validate.
    """
    mgr = SessionManager(store, secret=SECRET, **options)
    try:
        try:
            tokens = await create_sessions(mgr, n, write, options, data)
            async with mgr.running() if background else nullcontext(mgr):
                prepared = Prepared(mgr.validate, tokens)
                await warm(prepared)
                yield prepared
        finally:  # also when set-up or another row failed: leave nothing behind
            if wipe:  # the store's own wipe (the manager's sweeps in batches first: slower)
                await mgr.store.wipe()
    finally:
        await mgr.aclose()


async def warmed(prepared: Prepared) -> Prepared:
    """``prepared``, warmed now and again before each sample (:func:`warm`): the near cache
    rows are measured in their steady state, as in an app whose sessions are in use (its
    refresh-ahead keeps them cached), not after idling while the other rows ran."""
    await warm(prepared)
    return dataclasses.replace(prepared, before=functools.partial(warm, prepared))


async def warm(prepared: Prepared, tasks: int = 64) -> None:
    """Validate every token once, from ``tasks`` tasks: a cache in front of the store holds
    what a running app's would."""
    tokens = prepared.tokens

    async def worker(offset: int) -> None:
        for token in tokens[offset::tasks]:
            await prepared.op(token)

    async with anyio.create_task_group() as tg:
        for offset in range(tasks):
            tg.start_soon(worker, offset)


class SharedServer:
    """A server started by the first row that uses it and stopped after the last one.

    ``start`` is a (blocking) context manager yielding the server's URL; it runs
    while rows are set up, never while they are measured.
    """

    def __init__(self, start: Callable[[], AbstractContextManager[str]]) -> None:
        self._start = start
        self._users = 0
        self._stack = ExitStack()
        self.url = ""

    @asynccontextmanager
    async def use(self) -> AsyncIterator[str]:
        if self._users == 0:
            self.url = self._stack.enter_context(self._start())
        self._users += 1
        try:
            yield self.url
        finally:
            self._users -= 1
            if self._users == 0:
                self._stack.close()
