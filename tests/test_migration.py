"""``asyncsess.migrate``: sessions copied between every pair of store kinds keep working.

Each pair test creates sessions (nested data, two users and an anonymous one)
through a manager on the source, interrupts a first migration after its
first batch, runs it again to completion, then checks through a manager on
the target with the same secret: every token validates with its data, each
user's sessions are listed and revoked by user, and a later run carries over
a newer version and a new session. A store in process memory and one at rest
keep records in different formats: migrating between them is refused.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

import asyncsess
from asyncsess import (
    ConfigurationError,
    MigrationIncomplete,
    Record,
    SessionManager,
    Store,
    migrate,
    open_store,
)
from asyncsess.stores.memory import MemoryStore

from .backends import StoreSpec
from .backends.sql import drop_table
from .conftest import BACKENDS, SECRET

pytestmark = pytest.mark.anyio

PAIRS = [(source, target) for source in BACKENDS for target in BACKENDS]
ALICE_DATA = {
    "cart": [{"sku": "A1", "qty": 2}, {"sku": "B7", "qty": 1}],
    "prefs": {"langs": ["en", "fr"]},
}
BOB_DATA = {"role": "admin", "teams": [{"name": "ops", "since": [2024, 5]}]}
GUEST_DATA = {"cart": [{"sku": "C3", "qty": 4}]}


class Interrupted(Exception):
    """Stands for a Ctrl-C or a lost connection in the middle of a run."""


def _target_spec(kind: str, spec: StoreSpec, tmp_path: Path) -> StoreSpec:
    """A second store of the same kind as ``spec``, apart from it (cleaned up with it)."""
    if kind == "memory":
        return spec
    if kind == "file":
        return StoreSpec((tmp_path / "target-sessions").as_uri())
    if kind == "sqlite":
        return StoreSpec(f"sqlite:///{tmp_path / 'target.db'}")
    if kind in ("postgresql", "mariadb"):
        return StoreSpec(spec.url, {"table": spec.options["table"] + "_t"})
    if kind in ("redis", "redis_cluster"):  # under the source's prefix, wiped with it
        return StoreSpec(spec.url, {"prefix": spec.options["prefix"] + "t:"})
    assert kind == "mongodb"  # a collection of its own in the source's database
    return StoreSpec(spec.url, {**spec.options, "collection": "asyncsess_target"})


@pytest.fixture(params=PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def specs(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[StoreSpec, StoreSpec]:
    """The source's and the target's store, each isolated like the conformance suite's."""
    source_kind, target_kind = request.param
    source: StoreSpec = request.getfixturevalue(f"{source_kind}_store_spec")
    if target_kind == source_kind:
        return source, _target_spec(source_kind, source, tmp_path)
    target: StoreSpec = request.getfixturevalue(f"{target_kind}_store_spec")
    return source, target


@pytest.fixture
async def stores(specs: tuple[StoreSpec, StoreSpec]) -> AsyncIterator[tuple[Store, Store]]:
    source_spec, target_spec = specs
    source = open_store(source_spec.url, **source_spec.options)
    target = open_store(target_spec.url, **target_spec.options)
    try:
        yield source, target
    finally:
        await source.aclose()
        await target.aclose()
        if target_spec.options.get("table", "").endswith("_t"):  # a second table of one server
            await drop_table(target_spec.url, target_spec.options["table"])


def _thawed(session: asyncsess.Session | None) -> dict[str, Any] | None:
    return None if session is None else asyncsess.session.thaw(session.data)


async def test_every_pair_of_stores(stores: tuple[Store, Store]) -> None:
    source, target = stores
    async with SessionManager(source, secret=SECRET) as old:
        alice = [await old.create("alice", ALICE_DATA) for _ in range(2)]
        bob = await old.create("bob", BOB_DATA)
        guest = await old.create(None, GUEST_DATA)
    if type(source).persistent != type(target).persistent:
        with pytest.raises(ConfigurationError, match="process memory keeps sessions unsealed"):
            await migrate(source, target)
        assert await target.count(time.time()) == (0, 0)
        return

    stopped_at: list[int] = []

    def stop(read: int) -> None:
        stopped_at.append(read)
        raise Interrupted

    with pytest.raises(Interrupted):
        await migrate(source, target, batch=2, progress=stop)
    assert 1 <= stopped_at[0] <= 2
    assert (await target.count(time.time()))[0] == stopped_at[0]

    done = await migrate(source, target)
    assert (done.copied, done.present) == (4 - stopped_at[0], stopped_at[0])
    assert (done.updated, done.kept, done.expired) == (0, 0, 0)
    assert done.source_live == done.target_live == 4 and done.complete

    async with SessionManager(source, secret=SECRET) as old:
        assert await old.update(bob, {**BOB_DATA, "role": "owner"})
        carol = await old.create("carol", {"nested": {"deeper": [1, [2, 3]]}})
    again = await migrate(source, target)
    assert (again.copied, again.updated, again.present) == (1, 1, 3)

    async with SessionManager(target, secret=SECRET) as new:
        assert [_thawed(await new.validate(token)) for token in alice] == [ALICE_DATA] * 2
        assert _thawed(await new.validate(bob)) == {**BOB_DATA, "role": "owner"}
        assert _thawed(await new.validate(carol)) == {"nested": {"deeper": [1, [2, 3]]}}
        guest_session = await new.validate(guest)
        assert guest_session is not None and guest_session.user_id is None
        assert _thawed(guest_session) == GUEST_DATA
        assert len(await new.sessions("alice")) == 2 and len(await new.sessions("bob")) == 1
        assert await new.revoke_all("alice") == 2
        assert [await new.validate(token) for token in alice] == [None, None]
    async with SessionManager(source, secret=SECRET) as old:  # the source is left as it was
        assert [_thawed(await old.validate(token)) for token in alice] == [ALICE_DATA] * 2


def _record(key: str, *, version: int = 1, life: float = 600.0, user_ref: str = "u") -> Record:
    now = time.time()
    return Record(
        key * 64, user_ref, b"sealed" + key.encode(), version, now, now + life, now + 6000
    )


async def test_what_is_in_the_target_decides_each_record() -> None:
    """Expired: not copied; newer in the target: kept; same version renewed in the source:
    updated; the same: present."""
    source, target = MemoryStore(), MemoryStore()
    expired, newer_there, renewed, same = (_record(k) for k in "abcd")
    expired = dataclasses.replace(expired, expires_at=time.time() - 1)
    for record in (expired, newer_there, renewed, same):
        await source.insert(record)
    kept = dataclasses.replace(newer_there, version=2, payload=b"the target's")
    old_expiry = dataclasses.replace(renewed, expires_at=renewed.expires_at - 60)
    for record in (kept, old_expiry, same):
        await target.insert(record)
    result = await migrate(source, target, batch=1)
    assert dataclasses.astuple(result)[:5] == (0, 1, 1, 1, 1)
    assert await target.get(expired.key) is None
    assert await target.get(newer_there.key) == kept
    assert await target.get(renewed.key) == renewed
    assert await target.get(same.key) == same


class WrittenDuringTheCopy(MemoryStore):
    """A source an app writes to while it is copied: a session lands behind the scan."""

    def __init__(self, late: Record) -> None:
        super().__init__()
        self.late: Record | None = late

    async def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        async for records in super().scan(batch):
            yield records
        if self.late is not None:
            await self.insert(self.late)
            self.late = None


async def test_the_final_count_finds_sessions_created_during_the_copy() -> None:
    source, target = WrittenDuringTheCopy(_record("b")), MemoryStore()
    await source.insert(_record("a"))
    with pytest.raises(MigrationIncomplete, match="run the migration again") as info:
        await migrate(source, target)
    assert (info.value.result.source_live, info.value.result.target_live) == (2, 1)
    assert not info.value.result.complete
    again = await migrate(source, target)
    assert (again.copied, again.present, again.complete) == (1, 1, True)


async def test_urls_are_opened_and_closed(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    target_url = (tmp_path / "new").as_uri()
    async with SessionManager(source_url, secret=SECRET) as old:
        token = await old.create("alice", ALICE_DATA)
    result = await migrate(source_url, target_url, source_options={"create_table": False})
    assert (result.copied, result.target_live) == (1, 1)
    async with SessionManager(target_url, secret=SECRET) as new:
        assert _thawed(await new.validate(token)) == ALICE_DATA


async def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="batch must be an int >= 1"):
        await migrate(MemoryStore(), MemoryStore(), batch=0)
    with pytest.raises(ConfigurationError, match="source must be a store URL or an asyncsess"):
        await migrate(42, MemoryStore())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="target_options only apply to a URL"):
        await migrate(MemoryStore(), MemoryStore(), target_options={"table": "x"})


async def test_scan_under_a_non_ascii_redis_prefix(redis_store_spec: StoreSpec) -> None:
    """Keys are cut by the prefix's bytes, not its characters."""
    prefix = redis_store_spec.options["prefix"] + "séssions:"
    store = open_store(redis_store_spec.url, prefix=prefix)
    try:
        records = [_record(k) for k in "ab"]
        for record in records:
            await store.insert(record)
        async with aclosing(store.scan(10)) as batches:
            found = [record async for batch in batches for record in batch]
        assert sorted(found, key=lambda r: r.key) == records
    finally:
        await store.aclose()
