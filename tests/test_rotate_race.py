"""rotate() on every store deletes the old record only at the version it read, so an update
made meanwhile (say a privilege drop from another request) is carried over, never undone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from asyncsess import SessionConflict, SessionManager
from asyncsess.session import thaw
from asyncsess.stores.base import Record, Store
from tests.conftest import SECRET, FakeClock

pytestmark = pytest.mark.anyio


def after_each_insert(
    monkeypatch: pytest.MonkeyPatch, store: Store, hook: Callable[[], Awaitable[object]]
) -> None:
    """Run ``hook`` right after the store's every insert (rotate's: after its read)."""
    insert = store.insert

    async def insert_then_hook(record: Record) -> None:
        await insert(record)
        await hook()

    monkeypatch.setattr(store, "insert", insert_then_hook)


async def test_an_update_between_rotates_read_and_delete_is_kept(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = SessionManager(store, secret=SECRET, clock=clock)
    other_request = SessionManager(store, secret=SECRET, clock=clock)
    token = await app.create("alice", {"role": "admin", "grants": [{"scope": "all"}]})
    dropped = {"role": "user", "grants": []}
    pending = [dropped]

    async def privilege_drop() -> None:
        if pending:
            assert await other_request.update(token, pending.pop())

    after_each_insert(monkeypatch, store, privilege_drop)
    new = await app.rotate(token)
    assert new is not None and not pending
    session = await app.validate(new)
    assert session is not None and thaw(session.data) == dropped and session.version == 2
    assert await app.validate(token) is None
    assert [i.id for i in await app.sessions("alice")] == [session.id]


async def test_a_session_that_keeps_changing_raises_conflict(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = SessionManager(store, secret=SECRET, clock=clock)
    token = await app.create("alice", {"n": 0, "log": []})
    updates = 0

    async def another_update() -> None:
        nonlocal updates
        updates += 1
        assert await app.update(token, {"n": updates, "log": [updates]})

    after_each_insert(monkeypatch, store, another_update)
    with pytest.raises(SessionConflict):
        await app.rotate(token)
    monkeypatch.undo()
    session = await app.validate(token)  # the old token still works, with every update
    assert session is not None and session.data["n"] == updates > 1
    assert [i.id for i in await app.sessions("alice")] == [session.id]  # no half-rotated copy
