"""revoke_session on every store: one of a user's sessions ends by its id ("log out that
device"), only if it is that user's live session."""

from __future__ import annotations

import pytest

from asyncsess import SessionManager
from asyncsess.stores.base import Store
from asyncsess.tokens import token_key
from tests.conftest import IDLE, OTHER_SECRET, SECRET, FakeClock

pytestmark = pytest.mark.anyio
DEVICE = {"device": {"name": "phone", "tags": ["mobile"]}}


async def test_a_user_ends_one_of_their_sessions_by_id(
    manager: SessionManager, clock: FakeClock
) -> None:
    phone, laptop = [await manager.create("alice", DEVICE) for _ in range(2)]
    bob = await manager.create("bob", DEVICE)
    visitor = await manager.create(None, DEVICE)
    ids = [i.id for i in await manager.sessions("alice")]
    assert sorted(ids) == sorted([token_key(phone), token_key(laptop)])

    assert await manager.revoke_session(token_key(phone), user_id="alice") is True
    assert await manager.validate(phone) is None
    assert await manager.validate(laptop) is not None
    assert await manager.revoke_session(token_key(phone), user_id="alice") is False  # already ended

    # never another user's or an anonymous session; never a token or garbage
    assert await manager.revoke_session(token_key(bob), user_id="alice") is False
    assert await manager.revoke_session(token_key(visitor), user_id="alice") is False
    for bad in (laptop, "", "0" * 64, token_key(laptop).upper(), 42, None, b"x" * 64):
        assert await manager.revoke_session(bad, user_id="alice") is False
    assert await manager.validate(bob) is not None and await manager.validate(visitor) is not None
    assert await manager.validate(laptop) is not None

    clock.advance(IDLE + 1)  # expired: not a live session any more
    assert await manager.revoke_session(token_key(laptop), user_id="alice") is False


async def test_it_finds_sessions_under_an_older_secret(store: Store, clock: FakeClock) -> None:
    old = SessionManager(store, secret=SECRET, clock=clock)
    both = SessionManager(store, secret=[OTHER_SECRET, SECRET], clock=clock)
    token = await old.create("alice", DEVICE)
    assert await both.revoke_session(token_key(token), user_id="alice") is True
    assert await old.validate(token) is None
