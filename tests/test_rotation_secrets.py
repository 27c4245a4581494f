"""Secret rotation on every store: a rewrite (update, rotate, a validate that re-seals) moves
a session to the newest secret, user index included, so that once the old secret is dropped
the session is still listed and revoked; a session nobody touched stops opening (fail closed).
"""

from __future__ import annotations

import pytest

from asyncsess import SessionManager
from asyncsess.session import thaw
from asyncsess.stores.base import Store
from asyncsess.tokens import token_key
from tests.conftest import OTHER_SECRET, SECRET, FakeClock

pytestmark = pytest.mark.anyio

OLD, NEW = SECRET, OTHER_SECRET


def data(i: int) -> dict[str, object]:
    return {"i": i, "cart": [{"sku": f"sku-{i}", "qty": i}], "prefs": {"tags": ["a", "b"]}}


async def test_rewritten_sessions_survive_dropping_the_old_secret(
    store: Store, clock: FakeClock
) -> None:
    old = SessionManager(store, secret=OLD, clock=clock)
    both = SessionManager(store, secret=[NEW, OLD], clock=clock)
    new_only = SessionManager(store, secret=NEW, clock=clock)
    updated, rotated, validated, untouched = [await old.create("alice", data(i)) for i in range(4)]
    bob = await old.create("bob", data(9))

    assert await both.update(updated, data(10))
    rotated_to = await both.rotate(rotated)
    assert rotated_to is not None
    session = await both.validate(validated)
    assert session is not None and thaw(session.data) == data(2)
    moved = {token_key(t) for t in (updated, rotated_to, validated)}

    # every session is listed once while both secrets are configured
    listed = [i.id for i in await both.sessions("alice")]
    assert sorted(listed) == sorted({*moved, token_key(untouched)})

    # the keyring becomes [NEW]: the rewritten sessions are found, listed and revoked
    assert {i.id for i in await new_only.sessions("alice")} == (
        moved if type(store).persistent else {*moved, token_key(untouched)}
    )
    for token, expected in ((updated, data(10)), (rotated_to, data(1)), (validated, data(2))):
        opened = await new_only.validate(token)
        assert opened is not None and thaw(opened.data) == expected
    if type(store).persistent:
        assert await new_only.validate(untouched) is None  # sealed only under OLD: fail closed
        assert await new_only.revoke_all("alice") == 3
        assert await both.validate(untouched) is not None  # only OLD's holders still open it
    else:  # process memory: nothing is sealed, so nothing depends on a secret
        assert await new_only.revoke_all("alice") == 4
    for token in (updated, rotated_to, validated):
        assert await both.validate(token) is None
    assert await both.validate(bob) is not None


@pytest.mark.parametrize(
    "store_spec",
    ["file", "redis", "redis_cluster", "sqlite", "postgresql", "mariadb", "mongodb"],
    indirect=True,
)
async def test_a_validate_reseals_once(store: Store, clock: FakeClock) -> None:
    old = SessionManager(store, secret=OLD, clock=clock)
    both = SessionManager(store, secret=[NEW, OLD], clock=clock)
    token = await old.create("alice", data(1))
    before = await store.get(token_key(token))
    assert await both.validate(token) is not None
    resealed = await store.get(token_key(token))
    assert before is not None and resealed is not None
    assert resealed.payload != before.payload and resealed.user_ref != before.user_ref
    assert resealed.version == before.version  # same data: a concurrent update still applies
    assert await old.validate(token) is None  # sealed under NEW now
    assert await both.validate(token) is not None
    assert await both.validate(token) is not None
    assert await store.get(token_key(token)) == resealed  # not rewritten again
    assert await both.update(token, data(2), version=before.version)


@pytest.mark.parametrize("store_spec", ["file", "redis", "sqlite", "mongodb"], indirect=True)
async def test_a_reseal_never_undoes_a_concurrent_update(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-seal is a compare-and-set on the version read: an update that lands between
    the validate's read and its re-seal is kept."""
    old = SessionManager(store, secret=OLD, clock=clock)
    both = SessionManager(store, secret=[NEW, OLD], clock=clock)
    token = await old.create("alice", {"role": "admin", "grants": [{"scope": "all"}]})
    dropped = {"role": "user", "grants": []}
    get = store.get
    pending = [dropped]

    async def get_then_update(key: str, **kwargs: object) -> object:
        record = await get(key, **kwargs)  # type: ignore[arg-type]
        if pending:
            assert await both.update(token, pending.pop())
        return record

    monkeypatch.setattr(store, "get", get_then_update)
    assert await both.validate(token) is not None  # read before the update, re-seal refused
    monkeypatch.undo()
    session = await both.validate(token)
    assert session is not None and thaw(session.data) == dropped and session.version == 2
