"""validate() on arbitrary input: always None, never raises, no I/O unless well-formed."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncsess import SessionManager
from asyncsess.stores.base import Record, Renewal
from asyncsess.stores.memory import MemoryStore
from asyncsess.tokens import TOKEN_LENGTH, is_well_formed, new_token


class CountingStore(MemoryStore):
    """A real memory store that counts the calls reaching it.

    It says it keeps records at rest (managers on it pass ``privacy_mode=False``),
    so the manager treats a call to it as I/O, as it would a database's.
    """

    persistent = True

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        self.calls += 1
        return await super().get(key, renew=renew)

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        self.calls += 1
        return await super().delete(key, expected_version=expected_version)


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.binary() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner),
    max_leaves=5,
)
near_tokens = st.one_of(
    st.text(),
    st.text(min_size=TOKEN_LENGTH, max_size=TOKEN_LENGTH),
    st.text(alphabet="ABCxyz019_-=+/. ", min_size=TOKEN_LENGTH - 1, max_size=TOKEN_LENGTH + 1),
    st.builds(lambda c, n: c * n, st.characters(), st.integers(10_000, 1_000_000)),
    st.text(st.characters(categories=["Cs"]), min_size=TOKEN_LENGTH, max_size=TOKEN_LENGTH),
    st.builds(
        lambda t, c, i: t[:i] + c + t[i + 1 :],
        st.just(new_token()),
        st.characters(),
        st.integers(0, 42),
    ),
)


def run_validate(store: CountingStore, mgr: SessionManager, value: object) -> tuple[Any, int]:
    async def go() -> Any:
        return await mgr.validate(value), await mgr.revoke(value)

    before = store.calls
    result = anyio.run(go)
    return result, store.calls - before


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=anything | near_tokens)
def test_validate_returns_none_without_io_for_malformed(value: object) -> None:
    store = CountingStore()
    mgr = SessionManager(store, privacy_mode=False)
    (session, revoked), calls = run_validate(store, mgr, value)
    assert session is None and revoked is False
    if not is_well_formed(value):
        assert calls == 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=anything | near_tokens)
def test_validate_in_process_returns_none_for_malformed(value: object) -> None:
    """In process the lookup may come before the alphabet check: still None, never raises."""

    async def go() -> tuple[object, bool]:
        async with SessionManager("memory://") as mgr:
            await mgr.create("alice", {"cart": [1, 2]})
            return await mgr.validate(value), await mgr.revoke(value)

    assert anyio.run(go) == (None, False)


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32))
def test_unknown_well_formed_tokens_are_looked_up_and_rejected(raw: bytes) -> None:
    import base64

    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert is_well_formed(token)
    store = CountingStore()
    mgr = SessionManager(store, privacy_mode=False)
    (session, revoked), calls = run_validate(store, mgr, token)
    assert session is None and revoked is False and calls == 2


def test_tokens_have_256_bits_and_a_strict_shape() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(is_well_formed(t) and len(t) == TOKEN_LENGTH for t in tokens)
    token = new_token()
    assert not is_well_formed(token + "A")
    assert not is_well_formed(token[:-1] + "B")  # last char can only carry 4 bits
    assert not is_well_formed(token.encode())
    assert not is_well_formed(token[:-1] + "\u0410")


@pytest.mark.anyio
async def test_validate_of_live_token_does_one_store_call() -> None:
    store = CountingStore()
    mgr = SessionManager(store, privacy_mode=False)
    token = await mgr.create("alice")
    before = store.calls
    assert await mgr.validate(token) is not None
    assert store.calls - before == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("user_id", "error"),
    [(42, TypeError), (None, TypeError), (b"alice", TypeError), (["alice"], TypeError),
     ("", ValueError)],
)  # fmt: skip
async def test_user_calls_refuse_a_bad_user_id_without_io(user_id: object, error: type) -> None:
    store = CountingStore()
    mgr = SessionManager(store, privacy_mode=False)
    await mgr.create("alice")
    before = store.calls
    with pytest.raises(error, match="user_id"):
        await mgr.sessions(user_id)  # type: ignore[arg-type]
    with pytest.raises(error, match="user_id"):
        await mgr.revoke_all(user_id)  # type: ignore[arg-type]
    with pytest.raises(error, match="user_id"):
        await mgr.revoke_session("0" * 64, user_id=user_id)  # type: ignore[arg-type]
    if user_id is not None:
        with pytest.raises(error, match="user_id"):
            await mgr.create(user_id)  # type: ignore[arg-type]
    assert store.calls == before
