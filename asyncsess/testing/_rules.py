"""The rules of the store contract, each an async check of one store (see ``base.py``).

Every rule works on records of its own (fresh random keys and user references,
expiring in real time: Redis and MongoDB expire by the server's clock), and
measures counts against what the store held before, so the rules hold on a
store that other data shares. ``check_store`` runs each on a store of its own.
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
import time
from collections.abc import Awaitable, Callable, Collection
from contextlib import aclosing
from dataclasses import dataclass, replace

import anyio

from ..stores.base import Record, RecordExists, Renewal, Store

__all__ = ["RULES", "Rule", "check_store", "run_rule"]

StoreFactory = Callable[[], Store | Awaitable[Store]]
_PAYLOAD = bytes(range(256)) * 3 + b"\x00"  # every byte value, ending in a NUL


def _key() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def _user() -> str:
    return hashlib.sha256(secrets.token_bytes(16)).hexdigest()


def _record(user_ref: str, *, version: int = 1, life: float = 600.0) -> Record:
    now = time.time()
    return Record(_key(), user_ref, _PAYLOAD, version, now, now + life, now + 6 * life)


async def _keys_of(store: Store, user_ref: str) -> set[str]:
    return {r.key for r in await store.list_user(user_ref)}


async def get_and_get_many(store: Store) -> None:
    """get returns the record as inserted (every field, payload bytes exact) or None;
    get_many returns one entry per key, in the order asked, repeats included."""
    a, b = _record(_user()), _record("ユーザー·" + _user()[:16])
    a = replace(a, created_at=a.created_at + 0.123456789, payload=_PAYLOAD[::-1])
    for record in (a, b):
        await store.insert(record)
    assert await store.get(a.key) == a, "get did not return the record as inserted"
    assert await store.get(b.key) == b, "a non-ASCII user_ref did not round-trip"
    assert await store.get(_key()) is None, "get of an unknown key is not None"
    missing = _key()
    got = await store.get_many([b.key, missing, a.key, b.key])
    assert got == [b, None, a, b], "get_many did not answer each key in order"
    assert await store.get_many([]) == [], "get_many([]) is not []"


async def insert_existing_raises(store: Store) -> None:
    """insert on a key that exists raises RecordExists and changes nothing."""
    first = _record(_user())
    await store.insert(first)
    other = replace(first, user_ref=_user(), payload=b"other", version=7)
    try:
        await store.insert(other)
    except RecordExists:
        pass
    else:
        raise AssertionError("insert over an existing key did not raise RecordExists")
    assert await store.get(first.key) == first, "a refused insert changed the record"
    assert await _keys_of(store, other.user_ref) == set(), "a refused insert indexed the key"
    assert await _keys_of(store, first.user_ref) == {first.key}


async def renewing_get(store: Store) -> None:
    """A renewing get renews a live, due record (expires_at = min(until, absolute_at)),
    stores that and returns it; a record not due or expired is returned and kept as is."""
    due, capped, fresh, gone = (_record(_user()) for _ in range(4))
    capped = replace(capped, absolute_at=capped.expires_at + 60)
    for record in (due, capped, fresh, gone):
        await store.insert(record)
    now = due.created_at + 1
    renew = Renewal(now, threshold=due.expires_at + 1, until=due.expires_at + 300)
    renewed = await store.get(due.key, renew=renew)
    assert renewed == replace(due, expires_at=due.expires_at + 300), "due record not renewed"
    assert await store.get(due.key) == renewed, "the renewal was returned but not stored"
    got = await store.get(capped.key, renew=renew)
    assert got == replace(capped, expires_at=capped.absolute_at), "renewal past absolute_at"
    early = Renewal(now, threshold=fresh.expires_at - 1, until=fresh.expires_at + 300)
    assert await store.get(fresh.key, renew=early) == fresh, "a record not due was renewed"
    late = Renewal(gone.expires_at, threshold=gone.expires_at + 600, until=gone.expires_at + 900)
    assert await store.get(gone.key, renew=late) == gone, "an expired record was renewed"
    assert await store.get(gone.key) == gone and await store.get(fresh.key) == fresh
    many = await store.get_many([fresh.key, due.key], renew=early)
    assert many == [fresh, renewed], "get_many renewed a record that was not due"


async def replace_by_version(store: Store) -> None:
    """replace writes only over the expected version (False otherwise, nothing changed),
    never creates a record, and among concurrent replaces of one version one wins."""
    record = _record(_user(), version=3)
    await store.insert(record)
    stale = replace(record, payload=b"stale", version=4)
    assert await store.replace(stale, expected_version=2) is False, "replace ignored the version"
    assert await store.get(record.key) == record, "a refused replace changed the record"
    newer = replace(record, payload=b"newer", version=4, expires_at=record.expires_at + 5)
    assert await store.replace(newer, expected_version=3) is True
    assert await store.get(record.key) == newer, "replace did not store the new record"
    ghost = _record(_user())
    assert await store.replace(ghost, expected_version=1) is False, "replace of a missing key"
    assert await store.get(ghost.key) is None, "replace created a record"
    wins: list[bool] = []

    async def contend(i: int) -> None:
        attempt = replace(newer, payload=f"writer {i}".encode(), version=5)
        wins.append(await store.replace(attempt, expected_version=4))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(contend, i)
    assert wins.count(True) == 1, f"{wins.count(True)} concurrent replaces of one version won"


async def replace_moves_the_index(store: Store) -> None:
    """A replace that changes user_ref moves the record between the users' lists and
    delete_user; a failed one moves nothing."""
    old_ref, new_ref = _user(), _user()
    moved, stays = _record(old_ref), _record(old_ref)
    for record in (moved, stays):
        await store.insert(record)
    rewritten = replace(moved, user_ref=new_ref, payload=b"resealed", version=2)
    assert await store.replace(rewritten, expected_version=1)
    assert await _keys_of(store, new_ref) == {moved.key}, "moved record not in its new list"
    assert await _keys_of(store, old_ref) == {stays.key}, "moved record still in its old list"
    assert await store.delete_user(old_ref) == 1, "delete_user reached a moved record"
    assert await store.get(moved.key) == rewritten
    other = _record(old_ref)
    await store.insert(other)
    assert not await store.replace(replace(other, user_ref=new_ref, version=5), expected_version=4)
    assert await _keys_of(store, new_ref) == {moved.key}, "a failed replace moved the index"
    assert await _keys_of(store, old_ref) == {other.key}


async def delete_one(store: Store) -> None:
    """delete removes one record (True once, then False), only at the expected version
    when one is given, and takes it out of its user's list."""
    user = _user()
    record, other = _record(user, version=3), _record(user)
    for r in (record, other):
        await store.insert(r)
    assert await store.delete(record.key, expected_version=2) is False, "delete ignored version"
    assert await store.get(record.key) == record
    assert await store.delete(record.key, expected_version=3) is True
    assert await store.get(record.key) is None, "a deleted record is still there"
    assert await store.delete(record.key) is False, "a second delete returned True"
    assert await _keys_of(store, user) == {other.key}, "a deleted record is still listed"
    assert await store.delete(other.key) is True and await _keys_of(store, user) == set()


async def per_user_lists(store: Store) -> None:
    """list_user returns exactly the user's records (any order) as stored, seeing every
    call that returned before it; delete_user deletes them but ``keep`` and counts them."""
    alice, bob = _user(), _user()
    mine = [_record(alice) for _ in range(3)]
    theirs = _record(bob)
    for record in (*mine, theirs):
        await store.insert(record)
    listed = await store.list_user(alice)
    assert sorted(listed, key=lambda r: r.key) == sorted(mine, key=lambda r: r.key)
    assert await store.list_user(_user()) == [], "an unknown user has records"
    renamed = replace(mine[0], payload=b"updated", version=2)
    assert await store.replace(renamed, expected_version=1)
    assert renamed in await store.list_user(alice), "list_user missed a replace before it"
    assert await store.delete_user(alice, keep=mine[1].key) == 2, "delete_user count"
    assert await _keys_of(store, alice) == {mine[1].key}, "delete_user spared too much or little"
    assert await store.get(mine[1].key) == mine[1] and await store.get(mine[2].key) is None
    assert await store.get(theirs.key) == theirs, "delete_user reached another user"
    assert await store.delete_user(alice) == 1 and await store.delete_user(alice) == 0


async def anonymous_records(store: Store) -> None:
    """A record with user_ref "" is in no user's list: list_user("") is empty and
    delete_user("") deletes nothing; a replace may give it a user and take it back."""
    anonymous = [_record("") for _ in range(3)]
    for record in anonymous:
        await store.insert(record)
    assert await store.list_user("") == [], "list_user('') listed anonymous records"
    assert await store.delete_user("") == 0, "delete_user('') deleted records"
    assert [await store.get(r.key) for r in anonymous] == anonymous
    user = _user()
    claimed = replace(anonymous[0], user_ref=user, version=2)
    assert await store.replace(claimed, expected_version=1)
    assert await _keys_of(store, user) == {claimed.key}
    assert await store.replace(replace(claimed, user_ref="", version=3), expected_version=2)
    assert await _keys_of(store, user) == set() and await store.list_user("") == []


async def sweep_and_count(store: Store) -> None:
    """count(now) splits records into live (expires_at > now) and expired; sweep(now,
    limit) deletes at most ``limit`` expired ones, returns how many, and unlists them."""
    user = _user()
    expiring = [_record(user, life=600) for _ in range(5)]
    lasting = [_record(user, life=6000) for _ in range(2)]
    # the caller's clock, ahead of the server's: nothing expires by the server's own meanwhile
    now = expiring[0].created_at + 1200
    while await store.sweep(now, limit=1000):  # what the store held before
        pass
    live, expired = await store.count(now)
    for record in (*expiring, *lasting):
        await store.insert(record)
    assert await store.count(now) == (live + 2, expired + 5), "count(now) is wrong"
    assert await store.sweep(now, limit=2) == 2, "sweep ignored its limit"
    assert await store.sweep(now, limit=100) == 3, "sweep missed expired records"
    assert await store.sweep(now, limit=100) == 0
    assert await _keys_of(store, user) == {r.key for r in lasting}, "swept records listed"
    assert [await store.get(r.key) for r in lasting] == lasting, "sweep deleted live records"
    assert await store.count(now) == (live + 2, expired), "count after sweep is wrong"


async def scan_everything(store: Store) -> None:
    """scan(batch) yields every record held, as stored, in lists of 1 to ``batch``
    records (anonymous ones included); a deleted record is not among them."""
    user = _user()
    records = [_record(user) for _ in range(4)] + [_record(""), _record(_user())]
    deleted = _record(user)
    for record in (*records, deleted):
        await store.insert(record)
    await store.delete(deleted.key)
    seen: dict[str, Record] = {}
    async with aclosing(store.scan(2)) as batches:
        async for batch in batches:
            assert 1 <= len(batch) <= 2, f"scan(2) yielded a list of {len(batch)} records"
            seen.update((record.key, record) for record in batch)
    missed = [record for record in records if seen.get(record.key) != record]
    assert not missed, f"scan missed or altered {len(missed)} of {len(records)} records"
    assert deleted.key not in seen, "scan yielded a deleted record"


async def wipe_all(store: Store) -> None:
    """wipe deletes every record (returning how many) and every user's list; the store
    stays usable."""
    user = _user()
    records = [_record(user) for _ in range(3)] + [_record("")]
    for record in records:
        await store.insert(record)
    live, expired = await store.count(time.time())
    assert await store.wipe() == live + expired, "wipe did not return how many it deleted"
    assert await store.count(time.time()) == (0, 0), "records outlived wipe"
    assert await store.list_user(user) == [], "a user's list outlived wipe"
    assert await store.get(records[0].key) is None
    await store.insert(records[0])
    assert await store.get(records[0].key) == records[0], "the store is unusable after wipe"


@dataclass(frozen=True)
class Rule:
    """One rule of the store contract: its name, what it says, and its check."""

    name: str
    check: Callable[[Store], Awaitable[None]]

    @property
    def doc(self) -> str:
        """What the rule says (the check's docstring, on one line)."""
        return " ".join((self.check.__doc__ or "").split())


RULES: tuple[Rule, ...] = tuple(
    Rule(check.__name__, check)
    for check in (
        get_and_get_many,
        insert_existing_raises,
        renewing_get,
        replace_by_version,
        replace_moves_the_index,
        delete_one,
        per_user_lists,
        anonymous_records,
        sweep_and_count,
        scan_everything,
        wipe_all,
    )
)


async def run_rule(rule: Rule, store: Store) -> None:
    """Open ``store``, check ``rule`` on it, then wipe it; a broken rule raises
    AssertionError naming the rule and what it says."""
    await store.open()
    try:
        await rule.check(store)
    except AssertionError as exc:
        raise AssertionError(
            f"store contract rule {rule.name!r} broken: {exc}\n({rule.doc})"
        ) from exc
    await store.wipe()


async def check_store(factory: StoreFactory, *, skip: Collection[str] = ()) -> None:
    """Check every rule of the store contract, each on a new store from ``factory``.

    ``factory()`` returns a :class:`~asyncsess.stores.base.Store` (or an
    awaitable of one) that is empty or shared with nothing the rules could
    disturb; each is opened, checked, wiped and closed. Raises
    :class:`AssertionError` naming the first broken rule. ``skip`` names rules
    not to check.
    """
    unknown = set(skip) - {rule.name for rule in RULES}
    if unknown:
        raise ValueError(f"no such store contract rules: {sorted(unknown)}")
    for rule in RULES:
        if rule.name in skip:
            continue
        made = factory()
        store = await made if inspect.isawaitable(made) else made
        try:
            await run_rule(rule, store)
        finally:
            await store.aclose()
