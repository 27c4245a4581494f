"""An update or rotate that keeps losing to concurrent writers gives up with a
SessionConflict that says so (the session still exists), never "no longer exists"."""

from __future__ import annotations

import dataclasses

import pytest

from asyncsess import SessionConflict, SessionManager
from asyncsess.stores.base import Record
from asyncsess.stores.memory import MemoryStore
from asyncsess.tokens import token_key

pytestmark = pytest.mark.anyio
DATA = {"role": "member", "cart": [{"sku": "A-1", "qty": 1}]}


class Contended(MemoryStore):
    """A store where another writer changes the session just before each conditional write."""

    async def _bump(self, key: str) -> None:
        current = await self.get(key)
        if current is not None:
            bumped = dataclasses.replace(current, version=current.version + 1)
            assert await super().replace(bumped, expected_version=current.version)

    async def replace(self, record: Record, *, expected_version: int) -> bool:
        await self._bump(record.key)
        return await super().replace(record, expected_version=expected_version)

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        if expected_version is not None:
            await self._bump(key)
        return await super().delete(key, expected_version=expected_version)


async def test_an_update_that_keeps_losing_says_the_session_kept_changing() -> None:
    store = Contended()
    mgr = SessionManager(store)
    token = await mgr.create("alice", DATA)
    with pytest.raises(SessionConflict, match="kept changing: 16 attempts") as info:
        await mgr.update(token, {**DATA, "role": "admin"})
    assert "no longer exists" not in str(info.value) and info.value.attempts == 16
    assert await mgr.validate(token) is not None  # it does exist, at a version moved 16 times
    assert (await store.get(token_key(token))).version == 17  # type: ignore[union-attr]


async def test_a_rotate_that_keeps_losing_says_so_and_keeps_the_session() -> None:
    mgr = SessionManager(Contended())
    token = await mgr.create("alice", DATA)
    with pytest.raises(SessionConflict, match="kept changing") as info:
        await mgr.rotate(token)
    assert info.value.attempts == 16
    session = await mgr.validate(token)
    assert session is not None and session.data["cart"][0]["sku"] == "A-1"
    assert len(await mgr.sessions("alice")) == 1  # no half-rotated copy left behind


async def test_a_versioned_update_names_the_version_it_found() -> None:
    mgr = SessionManager(MemoryStore())
    token = await mgr.create("alice", DATA)
    assert await mgr.update(token, DATA, version=1)
    with pytest.raises(SessionConflict, match="is at version 2"):
        await mgr.update(token, DATA, version=1)
    assert await mgr.revoke(token)
    assert await mgr.update(token, DATA, version=2) is False  # not live: False, no conflict
