"""A record's lifetime and version are bound to its seal: someone who can write to the store
but has no secret cannot give a session a longer life or another version; and no manager
accepts a record whose absolute expiry lies further out than its absolute_timeout allows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from asyncsess import SessionManager
from asyncsess.stores.base import Record, Store
from asyncsess.tokens import token_key
from tests.conftest import ABSOLUTE, BACKENDS, SECRET

pytestmark = pytest.mark.anyio
PERSISTENT = [b for b in BACKENDS if b != "memory"]
YEARS = 10 * 365 * 86400.0


def edited(record: Record, **changes: object) -> Record:
    """A new record object (as one read back from a store) with ``changes``."""
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.compare}
    return Record(**{**fields, **changes})


EDITS: dict[str, Callable[[Record], Record]] = {
    "absolute_at moved out": lambda r: edited(r, absolute_at=r.absolute_at + YEARS),
    "created_at and absolute_at moved out together": lambda r: edited(
        r, created_at=r.created_at + YEARS, absolute_at=r.absolute_at + YEARS
    ),
    "created_at moved back": lambda r: edited(r, created_at=r.created_at - 60),
    "version raised": lambda r: edited(r, version=r.version + 1),
    "version lowered": lambda r: edited(r, version=r.version - 1),
}


async def edit_at_rest(store: Store, token: str, edit: Callable[[Record], Record]) -> None:
    record = await store.get(token_key(token))
    assert record is not None
    assert await store.replace(edit(record), expected_version=record.version)


@pytest.mark.parametrize("store_spec", PERSISTENT, indirect=True)
@pytest.mark.parametrize("edit", list(EDITS))
async def test_a_record_edited_at_rest_does_not_open(
    manager: SessionManager, store: Store, edit: str
) -> None:
    token = await manager.create("alice", {"role": "user", "groups": [{"id": 1}]})
    assert await manager.update(token, {"role": "user", "groups": []})  # version 2
    assert await manager.validate(token) is not None  # opened once (and cached)
    await edit_at_rest(store, token, EDITS[edit])
    assert await manager.validate(token) is None
    assert await manager.update(token, {"role": "admin"}) is False
    assert await manager.rotate(token) is None


async def test_an_absolute_expiry_beyond_the_timeout_is_refused(
    manager: SessionManager, store: Store
) -> None:
    """On every store, sealed or not (process memory, privacy mode off)."""
    token = await manager.create("alice", {"role": "user"})
    assert await manager.validate(token) is not None
    await edit_at_rest(store, token, EDITS["absolute_at moved out"])
    assert await manager.validate(token) is None
    assert await manager.update(token, {"role": "admin"}) is False


@pytest.mark.parametrize("store_spec", ["sqlite"], indirect=True)
async def test_unsealed_records_are_checked_too(store: Store) -> None:
    clear = SessionManager(store, privacy_mode=False, absolute_timeout=ABSOLUTE)
    token = await clear.create("alice", {"role": "user"})
    await edit_at_rest(store, token, EDITS["absolute_at moved out"])
    assert await clear.validate(token) is None
    other = await clear.create("alice", {"role": "user"})
    await edit_at_rest(store, other, lambda r: edited(r, user_ref="mallory"))
    assert await clear.validate(other) is None  # the record's user is not its index's


@pytest.mark.parametrize("store_spec", PERSISTENT, indirect=True)
async def test_a_shorter_absolute_timeout_applies_to_existing_sessions(store: Store) -> None:
    long = SessionManager(store, secret=SECRET, absolute_timeout=ABSOLUTE)
    short = SessionManager(store, secret=SECRET, absolute_timeout=ABSOLUTE / 2)
    token = await long.create("alice")
    assert await long.validate(token) is not None
    assert await short.validate(token) is None
