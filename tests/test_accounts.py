"""Accounts on every backend (memory, SQLite, PostgreSQL, MongoDB): every call, argon2id at
rest, rehash, duplicates, concurrency, bad input that writes nothing, and login.

Run with ``pytest tests/test_accounts.py -p tests.backends.sql -p tests.backends.mongo``
while the root conftest does not load those plugins.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from pymongo import AsyncMongoClient

from asyncsess import (
    ConfigurationError,
    InvalidPassword,
    InvalidUsername,
    LoginThrottled,
    SessionManager,
    UserExists,
)
from asyncsess.accounts import Accounts, LoginLimits, PasswordHasher, User, login
from asyncsess.accounts.backends.sql import DEFAULT_TABLE, users_table
from asyncsess.accounts.throttle import client_key
from asyncsess.ratelimit import Decision, RateLimiter
from asyncsess.stores.sql import SQLStore
from tests.backends import StoreSpec
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio

#: Every accounts backend; each has a ``<name>_store_spec`` fixture. Add one name per backend.
BACKENDS = ["memory", "sqlite", "postgresql", "mariadb", "mongodb"]
FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
PASSWORD = "correct horse battery staple"

BAD_USERNAMES: list[object] = [
    "",
    " alice",
    "alice ",
    "\u3000alice",  # ideographic space: whitespace once normalised
    "al\x00ice",
    "al\nice",
    "al\u200bice",  # zero-width space (format)
    "al\u202eice",  # right-to-left override (format)
    "al\u2028ice",  # line separator
    "\ue000alice",  # private use
    "a" * 151,
    "a" * 10_000_000,
    None,
    123,
    b"alice",
    ["alice"],
]
BAD_PASSWORDS: list[object] = ["", "x" * 1025, "x" * 10_000_000, None, 123, b"pw", "\ud800"]


def wide(text: str) -> str:
    """``text`` in full-width letters (U+FF21...), which NFKC maps back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def fast_hasher(**params: int) -> PasswordHasher:
    """Cheap parameters, and room to queue the tests' bursts."""
    return PasswordHasher(**{**FAST, "max_waiting": 64, **params})


def account_options(spec: StoreSpec) -> dict[str, Any]:
    """A users table of the test's own next to the spec's sessions table (SQL servers)."""
    table = spec.options.get("table")
    return {"table": f"{table}_users"} if table else {}


async def drop_users_table(spec: StoreSpec) -> None:
    table = account_options(spec).get("table")
    if table is None:
        return
    store = SQLStore.from_url(spec.url)
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(users_table(sa.MetaData(), table).drop, checkfirst=True)
    finally:
        await store.aclose()


@pytest.fixture(params=BACKENDS)
def spec(request: pytest.FixtureRequest) -> StoreSpec:
    found: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return found


@pytest.fixture(params=[b for b in BACKENDS if b != "memory"])
def database_spec(request: pytest.FixtureRequest) -> StoreSpec:
    """The backends with a database that sessions and accounts can share."""
    found: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return found


@pytest.fixture
async def accounts(spec: StoreSpec) -> AsyncIterator[Accounts]:
    """Accounts built from the backend's URL (exercising the registry), fast hashing."""
    accounts = Accounts(spec.url, hasher=fast_hasher(), **account_options(spec))
    try:
        yield accounts
    finally:
        try:
            await accounts.wipe()
        finally:
            await accounts.aclose()
            await drop_users_table(spec)


async def stored_hash(accounts: Accounts, username: str) -> str:
    record = await accounts.users.get(username)
    assert record is not None
    return record.password_hash


async def test_create_get_authenticate(accounts: Accounts) -> None:
    user = await accounts.create_user("Alice", PASSWORD)
    assert isinstance(user, User)
    assert user.username == "alice"
    assert len(user.id) >= 22  # 128 random bits, URL-safe
    assert user.created_at.tzinfo is UTC
    with pytest.raises(AttributeError):
        user.username = "bob"  # type: ignore[misc]
    other = await accounts.create_user("bob", PASSWORD)
    assert other.id != user.id

    for name in ("alice", "ALICE", wide("Alice")):
        assert await accounts.get_user(name) == user
        assert await accounts.authenticate(name, PASSWORD) == user
    assert await accounts.get_user("carol") is None
    assert await accounts.authenticate("alice", PASSWORD + "!") is None
    assert await accounts.authenticate("carol", PASSWORD) is None
    assert (await stored_hash(accounts, "alice")).startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert await accounts.count_users() == 2


async def test_get_user_by_id(accounts: Accounts) -> None:
    user = await accounts.create_user("Alice", PASSWORD)
    assert await accounts.get_user_by_id(user.id) == user
    for other in ("no-such-id", "", "x" * 65, None, 123):
        assert await accounts.get_user_by_id(other) is None
    assert await accounts.delete_user("alice")
    assert await accounts.get_user_by_id(user.id) is None


async def test_unicode_password_is_normalised(accounts: Accounts) -> None:
    await accounts.create_user("zoe", "caf\u00e9 au lait")  # composed é
    assert await accounts.authenticate("zoe", "cafe\u0301 au lait") is not None  # decomposed


async def test_duplicates_in_any_case_or_width(accounts: Accounts) -> None:
    user = await accounts.create_user("Alice", PASSWORD)
    for name in ("Alice", "alice", "ALICE", wide("Alice"), wide("alice")):
        with pytest.raises(UserExists):
            await accounts.create_user(name, "another password")
    assert await accounts.count_users() == 1
    assert await accounts.authenticate("alice", PASSWORD) == user
    assert await accounts.authenticate("alice", "another password") is None


async def test_concurrent_creates_of_one_name_have_one_winner(accounts: Accounts) -> None:
    await accounts.count_users()  # schema ready: the race is about rows, not DDL
    names = ["dana", "DANA", "Dana", wide("Dana")] * 3
    won: list[User] = []
    lost: list[UserExists] = []

    async def create(name: str, password: str) -> None:
        try:
            won.append(await accounts.create_user(name, password))
        except UserExists as exc:
            lost.append(exc)

    async with anyio.create_task_group() as tg:
        for i, name in enumerate(names):
            tg.start_soon(create, name, f"a long password {i}")
    assert len(won) == 1 and len(lost) == len(names) - 1
    assert await accounts.count_users() == 1
    assert await accounts.get_user("dana") == won[0]


async def test_bad_input_is_refused_and_writes_nothing(accounts: Accounts) -> None:
    user = await accounts.create_user("alice", PASSWORD)
    before = await stored_hash(accounts, "alice")
    for name in BAD_USERNAMES:
        with pytest.raises(InvalidUsername):
            await accounts.create_user(name, PASSWORD)  # type: ignore[arg-type]
        assert await accounts.get_user(name) is None
        assert await accounts.authenticate(name, PASSWORD) is None
        assert await accounts.change_password(name, PASSWORD, "new password") is False
        assert await accounts.delete_user(name) is False
    for password in BAD_PASSWORDS:
        with pytest.raises(InvalidPassword):
            await accounts.create_user("bob", password)  # type: ignore[arg-type]
        assert await accounts.authenticate("alice", password) is None
        assert await accounts.change_password("alice", password, "new password") is False
        with pytest.raises(InvalidPassword):
            await accounts.change_password("alice", PASSWORD, password)  # type: ignore[arg-type]
    assert await accounts.count_users() == 1
    assert await stored_hash(accounts, "alice") == before
    assert await accounts.authenticate("alice", PASSWORD) == user
    # The limits themselves are accepted.
    await accounts.create_user("b" * 150, "p" * 1024)
    assert await accounts.authenticate("B" * 150, "p" * 1024) is not None


async def test_rehash_after_a_parameter_change(accounts: Accounts) -> None:
    await accounts.create_user("alice", PASSWORD)
    old = await stored_hash(accounts, "alice")
    assert old.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    accounts.hasher = fast_hasher(time_cost=2, memory_cost=16)
    assert await accounts.authenticate("alice", "wrong") is None
    assert await stored_hash(accounts, "alice") == old  # no rehash on a failed login
    user = await accounts.authenticate("alice", PASSWORD)
    assert user is not None
    new = await stored_hash(accounts, "alice")
    assert new.startswith("$argon2id$v=19$m=16,t=2,p=1$")
    assert await accounts.authenticate("alice", PASSWORD) == user
    assert await stored_hash(accounts, "alice") == new  # up to date: left alone


async def test_change_password_calls_the_hook(accounts: Accounts) -> None:
    changed: list[User] = []

    async def on_change(user: User) -> None:
        changed.append(user)

    accounts.on_password_change = on_change
    user = await accounts.create_user("alice", PASSWORD)
    assert await accounts.change_password("alice", "wrong", "new password") is False
    assert await accounts.change_password("nobody", PASSWORD, "new password") is False
    assert changed == []
    assert await accounts.change_password("ALICE", PASSWORD, "new password") is True
    assert changed == [user]
    assert await accounts.authenticate("alice", PASSWORD) is None
    assert await accounts.authenticate("alice", "new password") == user
    assert (await stored_hash(accounts, "alice")).startswith("$argon2id$")


async def test_concurrent_password_changes_have_one_winner(accounts: Accounts) -> None:
    await accounts.create_user("alice", PASSWORD)
    results: list[bool] = []

    async def change(new: str) -> None:
        results.append(await accounts.change_password("alice", PASSWORD, new))

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(change, f"new password {i}")
    assert sorted(results) == [False, False, False, True]


async def test_delete_user_calls_the_hook(accounts: Accounts) -> None:
    deleted: list[User] = []

    async def on_delete(user: User) -> None:
        deleted.append(user)

    accounts.on_delete = on_delete
    user = await accounts.create_user("alice", PASSWORD)
    await accounts.create_user("bob", PASSWORD)
    assert await accounts.delete_user("nobody") is False
    assert await accounts.delete_user("Alice") is True
    assert deleted == [user]
    assert await accounts.delete_user("alice") is False
    assert deleted == [user]
    assert await accounts.get_user("alice") is None
    assert await accounts.authenticate("alice", PASSWORD) is None
    again = await accounts.create_user("alice", PASSWORD)
    assert again.id != user.id
    assert await accounts.count_users() == 2


async def test_wipe(accounts: Accounts) -> None:
    assert await accounts.wipe() == 0
    for name in ("a", "b", "c"):
        await accounts.create_user(name, PASSWORD)
    assert await accounts.wipe() == 3
    assert await accounts.count_users() == 0
    assert await accounts.get_user("a") is None


async def test_accounts_share_the_session_store_database(database_spec: StoreSpec) -> None:
    """A SQLStore's engine, or a MongoDB database: both tables/collections side by side."""
    spec = database_spec
    if spec.url.startswith("mongodb"):
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(spec.url)
        try:
            database = client.get_default_database()
            async with Accounts(database, hasher=fast_hasher()) as accounts:
                await accounts.create_user("alice", PASSWORD)
                assert await accounts.authenticate("alice", PASSWORD) is not None
            assert "asyncsess_users" in await database.list_collection_names()
            assert await database["asyncsess_users"].count_documents({"username": "alice"}) == 1
            await client.admin.command("ping")  # still open: not closed by Accounts
        finally:
            await client.close()
        return
    store = SQLStore.from_url(spec.url, **spec.options)
    try:
        await store.open()
        async with Accounts(store, hasher=fast_hasher(), **account_options(spec)) as accounts:
            await accounts.create_user("alice", PASSWORD)
            table = accounts.users.table  # type: ignore[attr-defined]
        async with store.engine.connect() as conn:  # the store's engine was not disposed
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            found = (await conn.execute(sa.select(table.c.username, table.c.password_hash))).all()
        assert {store.table.name, table.name} <= set(names)
        assert [row[0] for row in found] == ["alice"]
        assert found[0][1].startswith("$argon2id$")
        assert PASSWORD not in found[0][1]
    finally:
        await store.wipe()
        await store.aclose()
        await drop_users_table(spec)


async def test_default_sql_table_and_app_engine(sqlite_store_spec: StoreSpec) -> None:
    store = SQLStore.from_url(sqlite_store_spec.url)
    try:
        async with Accounts(store.engine, hasher=fast_hasher()) as accounts:
            await accounts.create_user("alice", PASSWORD)
            assert accounts.users.table.name == DEFAULT_TABLE  # type: ignore[attr-defined]
        async with store.engine.connect() as conn:
            count = await conn.scalar(sa.text(f"SELECT count(*) FROM {DEFAULT_TABLE}"))
        assert count == 1
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "target",
    ["redis://127.0.0.1:6379/0", "nope://x", "not a url", 42, object()],
)
def test_unsupported_targets_are_configuration_errors(target: object) -> None:
    with pytest.raises(ConfigurationError):
        Accounts(target, hasher=fast_hasher())


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        Accounts("memory://", table="x")
    with pytest.raises(ConfigurationError):
        Accounts("sqlite+aiosqlite://", timeout=0)


def test_importing_accounts_and_ratelimit_imports_no_driver() -> None:
    code = (
        "import sys, asyncsess.accounts, asyncsess.ratelimit; "
        "bad = {'argon2', 'sqlalchemy', 'pymongo', 'redis'} & set(sys.modules); "
        "sys.exit(sorted(bad) or 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_unknown_user_costs_what_the_typical_stored_hash_costs() -> None:
    """After the parameters are raised, an unknown user is verified against a dummy hash
    with the parameters most stored hashes still have, until most have been rehashed."""
    old = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
    new = {"time_cost": 2, "memory_cost": 16, "parallelism": 1}
    async with Accounts("memory://", hasher=fast_hasher()) as accounts:
        names = [f"user{i}" for i in range(5)]
        for name in names:
            await accounts.create_user(name, PASSWORD)
        accounts.hasher = hasher = fast_hasher(**new)
        assert hasher.dummy_parameters.items() >= new.items()  # nothing verified yet
        for name in names:
            assert await accounts.authenticate(name, "wrong password") is None
        assert hasher.dummy_parameters.items() >= old.items()
        assert await accounts.authenticate("nobody", "wrong password") is None
        for name in names[:3]:  # rehashed on success, verified with the new ones after
            for _ in range(5):
                assert await accounts.authenticate(name, PASSWORD) is not None
        assert hasher.dummy_parameters.items() >= new.items()


# -- login ---------------------------------------------------------------


@pytest.fixture
async def manager(clock: FakeClock) -> AsyncIterator[SessionManager]:
    mgr = SessionManager("memory://", clock=clock)
    try:
        yield mgr
    finally:
        await mgr.aclose()


async def test_login_creates_a_session_for_the_user_id(manager: SessionManager) -> None:
    async with Accounts("memory://", hasher=fast_hasher()) as accounts:
        user = await accounts.create_user("Alice", PASSWORD)
        assert await login(manager, accounts, "alice", "wrong") is None
        assert await login(manager, accounts, "nobody", PASSWORD) is None
        assert await login(manager, accounts, "al\x00ice", PASSWORD) is None
        token = await login(manager, accounts, "ALICE", PASSWORD)
        assert token is not None
        session = await manager.validate(token)
        assert session is not None
        assert session.user_id == user.id
        assert session.data["username"] == "alice"
        assert await manager.revoke(token) is True  # logout
        assert await manager.validate(token) is None


async def test_login_is_throttled_per_username(manager: SessionManager, clock: FakeClock) -> None:
    users = RateLimiter("3/minute", clock=clock)
    limits = LoginLimits(username=users)
    async with Accounts("memory://", hasher=fast_hasher(), limits=limits) as accounts:
        await accounts.create_user("alice", PASSWORD)
        for _ in range(3):
            assert await login(manager, accounts, "Alice", "wrong") is None
        with pytest.raises(LoginThrottled) as caught:
            await login(manager, accounts, "ALICE", PASSWORD)
        assert caught.value.scope == "username"
        assert caught.value.retry_after == pytest.approx(60.0)
        # Another username is not affected; an unknown one is counted alike.
        for _ in range(3):
            assert await login(manager, accounts, "nobody", "a wrong password") is None
        with pytest.raises(LoginThrottled):
            await login(manager, accounts, "nobody", "a wrong password")
        clock.advance(60.0)
        assert await login(manager, accounts, "alice", PASSWORD) is not None
        # A success is not counted; the failures are, as they happen.
        assert await users.peek("user:alice") == Decision(True, 3, 0.0)
        assert await login(manager, accounts, "alice", "wrong") is None
        assert (await users.peek("user:alice")).remaining == 2


async def test_login_is_throttled_per_client(manager: SessionManager, clock: FakeClock) -> None:
    limits = LoginLimits(client="2/minute", clock=clock)
    async with Accounts("memory://", hasher=fast_hasher(), limits=limits) as accounts:
        await accounts.create_user("alice", PASSWORD)
        kwargs: dict[str, Any] = {"client": "203.0.113.7"}
        for _ in range(5):  # successes are never counted: an office behind one NAT logs in
            assert await login(manager, accounts, "alice", PASSWORD, **kwargs) is not None
        assert await login(manager, accounts, "bob", "a wrong password", **kwargs) is None
        assert await login(manager, accounts, "carol", "a wrong password", **kwargs) is None
        with pytest.raises(LoginThrottled) as caught:
            await login(manager, accounts, "alice", PASSWORD, **kwargs)
        assert caught.value.scope == "client"
        assert caught.value.retry_after == pytest.approx(60.0)
        other = {**kwargs, "client": "198.51.100.1"}
        assert await login(manager, accounts, "alice", PASSWORD, **other) is not None


async def test_ipv6_clients_are_limited_per_64(manager: SessionManager, clock: FakeClock) -> None:
    limits = LoginLimits(client="2/minute", clock=clock)
    async with Accounts("memory://", hasher=fast_hasher(), limits=limits) as accounts:
        for client in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"):
            assert await login(manager, accounts, "bob", "a wrong password", client=client) is None
        with pytest.raises(LoginThrottled):  # the same /64
            await login(manager, accounts, "bob", "a wrong password", client="2001:db8:1:2::9")
        assert await login(manager, accounts, "bob", "a wrong pw", client="2001:db8:1:3::1") is None
        # IPv4 per address, also written as IPv4-mapped IPv6
        for client in ("192.0.2.1", "::ffff:192.0.2.1"):
            assert await login(manager, accounts, "bob", "a wrong password", client=client) is None
        with pytest.raises(LoginThrottled):
            await login(manager, accounts, "bob", "a wrong password", client="192.0.2.1")
        assert await login(manager, accounts, "bob", "a wrong pw", client="192.0.2.2") is None


async def test_hooks_revoke_the_users_sessions(manager: SessionManager) -> None:
    """What the manager wires: a password change or a deletion ends the user's sessions."""
    async with Accounts("memory://", hasher=fast_hasher()) as accounts:

        async def revoke(user: User) -> None:
            await manager.revoke_all(user.id)

        accounts.on_password_change = accounts.on_delete = revoke
        await accounts.create_user("alice", PASSWORD)
        tokens = [await login(manager, accounts, "alice", PASSWORD) for _ in range(2)]
        assert await accounts.change_password("alice", PASSWORD, "new password")
        assert [await manager.validate(t) for t in tokens] == [None, None]
        token = await login(manager, accounts, "alice", "new password")
        assert await manager.validate(token) is not None
        assert await accounts.delete_user("alice")
        assert await manager.validate(token) is None


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("192.0.2.7", "client:192.0.2.7"),
        ("::ffff:192.0.2.7", "client:192.0.2.7"),
        ("2001:DB8:0:0:1::1", "client:2001:db8::/64"),
        ("2001:db8::ffff:ffff:ffff:ffff", "client:2001:db8::/64"),
        ("fe80::1%eth0", "client:fe80::/64"),
        ("unix:/run/app.sock", "client:unix:/run/app.sock"),
    ],
)
def test_client_keys_group_ipv6_by_64(client: str, key: str) -> None:
    assert client_key(client) == key
