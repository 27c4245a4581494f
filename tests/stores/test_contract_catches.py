"""The contract kit catches a store that breaks each rule: a memory store with one
defect each, checked with ``check_store``, fails naming that rule (and the sound
memory store passes)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import anyio
import pytest

from asyncsess.stores.base import Record, Renewal
from asyncsess.stores.memory import MemoryStore
from asyncsess.testing import RULES, check_store

pytestmark = pytest.mark.anyio


class InsertOverwrites(MemoryStore):
    async def insert(self, record: Record) -> None:
        await self.delete(record.key)
        await super().insert(record)


class ReplaceIgnoresVersion(MemoryStore):
    async def replace(self, record: Record, *, expected_version: int) -> bool:
        current = await self.get(record.key)
        version = current.version if current is not None else expected_version
        return await super().replace(record, expected_version=version)


class ReplaceNotAtomic(MemoryStore):
    async def replace(self, record: Record, *, expected_version: int) -> bool:
        current = await self.get(record.key)
        await anyio.sleep(0.01)  # check, then set: concurrent writers both win
        if current is None or current.version != expected_version:
            return False
        await self.delete(record.key)
        await super().insert(record)
        return True


class ReplaceLeavesTheIndex(MemoryStore):
    async def replace(self, record: Record, *, expected_version: int) -> bool:
        current = await self.get(record.key)
        if current is None or current.version != expected_version:
            return False
        return await super().replace(
            dataclasses.replace(record, user_ref=current.user_ref),
            expected_version=expected_version,
        )


class RenewalNotStored(MemoryStore):
    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        record = await super().get(key)
        renewed = renew.apply(record) if renew is not None and record is not None else None
        return renewed or record


class RenewalPastAbsolute(MemoryStore):
    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        record = await super().get(key)
        if record is None or renew is None or not renew.now < record.expires_at:
            return record
        if record.expires_at >= renew.threshold:
            return record
        renewed = dataclasses.replace(record, expires_at=renew.until)  # ignores absolute_at
        await super().replace(renewed, expected_version=record.version)
        return renewed


class GetManyUnordered(MemoryStore):
    async def get_many(
        self, keys: Sequence[str], *, renew: Renewal | None = None
    ) -> list[Record | None]:
        found = [await self.get(key, renew=renew) for key in dict.fromkeys(keys)]
        return sorted(found, key=lambda r: r is None)


class PayloadTrimmed(MemoryStore):
    async def insert(self, record: Record) -> None:
        await super().insert(dataclasses.replace(record, payload=record.payload.rstrip(b"\0")))


class DeleteIgnoresVersion(MemoryStore):
    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        return await super().delete(key)


class DeleteUserIgnoresKeep(MemoryStore):
    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        return await super().delete_user(user_ref)


class ListsAnonymous(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.anonymous: list[str] = []

    async def insert(self, record: Record) -> None:
        await super().insert(record)
        if not record.user_ref:
            self.anonymous.append(record.key)

    async def list_user(self, user_ref: str) -> list[Record]:
        if user_ref:
            return await super().list_user(user_ref)
        return [r for r in await self.get_many(self.anonymous) if r is not None]


class SweepIgnoresLimit(MemoryStore):
    async def sweep(self, now: float, *, limit: int) -> int:
        return await super().sweep(now, limit=10**9)


class CountSwapped(MemoryStore):
    async def count(self, now: float) -> tuple[int, int]:
        live, expired = await super().count(now)
        return expired, live


class ScanSkipsAnonymous(MemoryStore):
    async def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        async for records in super().scan(batch):
            if named := [r for r in records if r.user_ref]:
                yield named


class ScanIgnoresBatch(MemoryStore):
    async def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        async for records in super().scan(10**9):
            yield records


class WipeKeepsRecords(MemoryStore):
    async def wipe(self) -> int:
        return len(self)


BROKEN = [
    (InsertOverwrites, "insert_existing_raises"),
    (ReplaceIgnoresVersion, "replace_by_version"),
    (ReplaceNotAtomic, "replace_by_version"),
    (ReplaceLeavesTheIndex, "replace_moves_the_index"),
    (RenewalNotStored, "renewing_get"),
    (RenewalPastAbsolute, "renewing_get"),
    (GetManyUnordered, "get_and_get_many"),
    (PayloadTrimmed, "get_and_get_many"),
    (DeleteIgnoresVersion, "delete_one"),
    (DeleteUserIgnoresKeep, "per_user_lists"),
    (ListsAnonymous, "anonymous_records"),
    (SweepIgnoresLimit, "sweep_and_count"),
    (CountSwapped, "sweep_and_count"),
    (ScanSkipsAnonymous, "scan_everything"),
    (ScanIgnoresBatch, "scan_everything"),
    (WipeKeepsRecords, "wipe_all"),
]


def test_every_rule_has_a_store_that_breaks_it() -> None:
    assert {rule for _, rule in BROKEN} == {rule.name for rule in RULES}


@pytest.mark.parametrize(("broken", "rule"), BROKEN, ids=[b.__name__ for b, _ in BROKEN])
async def test_check_store_names_the_broken_rule(broken: type[MemoryStore], rule: str) -> None:
    with pytest.raises(AssertionError, match=f"store contract rule '{rule}' broken") as info:
        await check_store(broken)
    assert type(info.value) is AssertionError


async def test_the_sound_memory_store_passes_and_async_factories_work() -> None:
    await check_store(MemoryStore)

    async def factory() -> MemoryStore:
        return MemoryStore()

    await check_store(factory)
    with pytest.raises(ValueError, match="no such store contract rules"):
        await check_store(MemoryStore, skip=["no_such_rule"])


def test_store_contract_in_a_third_party_test_module(tmp_path: Path) -> None:
    """A subclass of StoreContract in a module of its own runs one test per rule, and a
    broken store fails the test of the rule it breaks."""
    module = tmp_path / "test_my_store.py"
    module.write_text(
        textwrap.dedent(
            """
            import pytest
            from asyncsess.stores.memory import MemoryStore
            from asyncsess.testing import StoreContract

            class SweepsTooMuch(MemoryStore):
                async def sweep(self, now, *, limit):
                    return await super().sweep(now, limit=10**9)

            class TestMemory(StoreContract):
                @pytest.fixture
                async def store(self):
                    yield MemoryStore()

            class TestBroken(StoreContract):
                @pytest.fixture
                async def store(self):
                    yield SweepsTooMuch()
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    rules = len(RULES)
    assert f"1 failed, {2 * rules - 1} passed" in result.stdout, result.stdout[-3000:]
    assert "TestBroken::test_sweep_and_count" in result.stdout
