"""Concurrent validates share store round trips; a lone one goes straight through."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from asyncsess import SessionManager, StoreUnavailable
from asyncsess.stores.base import Record, Renewal
from asyncsess.stores.file import FileStore
from tests.conftest import SECRET

pytestmark = pytest.mark.anyio


class CountingFileStore(FileStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self.gets = 0
        self.batches: list[int] = []
        self.fail_next = False

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        self.gets += 1
        return await super().get(key, renew=renew)

    async def get_many(
        self, keys: Sequence[str], *, renew: Renewal | None = None
    ) -> list[Record | None]:
        self.batches.append(len(keys))
        if self.fail_next:
            raise ConnectionResetError("server went away")
        return await super().get_many(keys, renew=renew)


async def test_concurrent_validates_are_batched(tmp_path: Path) -> None:
    store = CountingFileStore(tmp_path)
    mgr = SessionManager(store, secret=SECRET)
    tokens = [await mgr.create(f"user{i}", {"i": i}) for i in range(200)]
    tokens.append("A" * 42 + "A")  # unknown, well-formed
    results: dict[int, int | None] = {}

    async def check(i: int, token: str) -> None:
        session = await mgr.validate(token)
        results[i] = None if session is None else session.data["i"]

    async with anyio.create_task_group() as tg:
        for i, token in enumerate(tokens):
            tg.start_soon(check, i, token)
    assert results == {i: (i if i < 200 else None) for i in range(201)}
    assert store.gets + sum(store.batches) == 201
    assert store.gets <= 4 + len(store.batches)  # the manager batches beyond 4 in flight
    assert max(store.batches) > 1


async def test_lone_validate_is_not_delayed_into_a_batch(tmp_path: Path) -> None:
    store = CountingFileStore(tmp_path)
    mgr = SessionManager(store, secret=SECRET)
    token = await mgr.create("alice")
    for _ in range(5):
        assert await mgr.validate(token) is not None
    assert (store.gets, store.batches) == (5, [])


async def test_batch_failure_reaches_every_waiter(tmp_path: Path) -> None:
    store = CountingFileStore(tmp_path)
    mgr = SessionManager(store, secret=SECRET)
    tokens = [await mgr.create("alice") for _ in range(40)]
    store.fail_next = True
    outcomes: list[str] = []

    async def check(token: str) -> None:
        try:
            outcomes.append("valid" if await mgr.validate(token) else "none")
        except StoreUnavailable:
            outcomes.append("unavailable")

    async with anyio.create_task_group() as tg:
        for token in tokens:
            tg.start_soon(check, token)
    assert len(outcomes) == 40 and "none" not in outcomes
    assert outcomes.count("unavailable") == sum(store.batches) > 0


async def test_cancelled_waiters_do_not_strand_others(tmp_path: Path) -> None:
    store = CountingFileStore(tmp_path)
    mgr = SessionManager(store, secret=SECRET)
    tokens = [await mgr.create("alice") for _ in range(90)]
    finished: list[bool] = []
    cancelled: list[int] = []

    async def check(i: int, token: str) -> None:
        if i % 3:
            finished.append(await mgr.validate(token) is not None)
            return
        with anyio.move_on_after(random.random() / 500) as scope:
            await mgr.validate(token)
        if scope.cancelled_caught:
            cancelled.append(i)

    with anyio.fail_after(30):
        for _ in range(5):
            async with anyio.create_task_group() as tg:
                for i, token in enumerate(tokens):
                    tg.start_soon(check, i, token)
    assert finished == [True] * 300
    assert cancelled  # some lookups really were cancelled while queued or in flight
    # nothing stranded: a lone validate goes straight to the store (no slot leaked, no
    # queue left: it would wait for ever), and a crowd of them is served
    before = store.gets
    with anyio.fail_after(5):
        assert await mgr.validate(tokens[1]) is not None
    assert store.gets == before + 1
    crowd: list[bool] = []

    async def one(token: str) -> None:
        crowd.append(await mgr.validate(token) is not None)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for token in tokens:
                tg.start_soon(one, token)
    assert crowd == [True] * len(tokens)
