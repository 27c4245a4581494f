"""The older managers' APIs (``asyncsess.compat``): each README's example, then behaviour on
memory, files, Redis, MongoDB, SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from asyncsess import ConfigurationError, UnknownUser, UserExists
from asyncsess.accounts import PasswordHasher, User
from asyncsess.accounts.backends.sql import users_table
from asyncsess.compat import SessionAdapter, SessionManager, get_session_adapter
from asyncsess.compat.adapter import INVALID, VALID
from asyncsess.config import settings_from_mapping
from asyncsess.stores.file import FileStore
from asyncsess.stores.sql import SQLStore
from tests.backends import StoreSpec, unavailable
from tests.conftest import SECRET, FakeClock

pytestmark = pytest.mark.anyio

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "secure_password"
MINUTE, DAY = 60.0, 86_400.0


# -- the READMEs' examples -------------------------------------------------------------


async def test_adapter_readme_usage() -> None:
    # From the older adapter's README (../shared/seeds/000_*.txt, "## Usage"), verbatim but
    # for `await` and the import path (was: from linkers.session_adapter import ...).
    # fmt: off
    from asyncsess.compat import get_session_adapter

    # Initialize a session manager (memory, file, redis, or mongo)
    session_manager = get_session_adapter("memory", {
        "session_expiry_minutes": 30,
        "privacy_mode": True
    })

    # Create a user session
    token = await session_manager.create_session("user123")

    # Validate a session
    is_valid, message, user_data = await session_manager.validate_session(token)

    # Delete a session
    await session_manager.delete_session(token)
    # fmt: on
    # -- end of the README's example
    assert (is_valid, message, user_data) == (True, "Session valid", {"user_id": "user123"})
    assert await session_manager.validate_session(token) == (False, INVALID, None)
    assert session_manager.manager.idle_timeout == 30 * MINUTE
    await session_manager.aclose()


async def test_sqlalchemy_manager_readme_quickstart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the default database is ./sessions.db
    # From the older SQLAlchemy manager's README (../shared/seeds/003_*.txt, "## Quickstart"),
    # verbatim but for `await` and the import path (was: from managers.session_manager ...).
    user: User | None  # the example reuses the name for validate_session's result
    # fmt: off
    from asyncsess.compat import SessionManager

    sm = SessionManager()

    # Create a user
    user = await sm.create_user("alice", "secure_password")

    # Login (authenticate + create session)
    token = await sm.login("alice", "secure_password")

    # Validate session
    user = await sm.validate_session(token)
    if user:
        print(f"Logged in as {user.username}")

    # Logout
    await sm.logout(token)
    # fmt: on
    # -- end of the README's example
    assert capsys.readouterr().out == "Logged in as alice\n"
    assert await sm.validate_session(token) is None
    assert (tmp_path / "sessions.db").is_file()
    await sm.aclose()


async def test_sqlalchemy_manager_readme_custom_database() -> None:
    # From the same README, "## Custom Database", verbatim (constructing connects nothing).
    # fmt: off
    # Use PostgreSQL
    sm = SessionManager(db_url="postgresql://user:pass@localhost/mydb")

    # Use MySQL
    sm = SessionManager(db_url="mysql://user:pass@localhost/mydb")

    # Custom session duration
    sm = SessionManager(session_duration_days=7)
    # fmt: on
    # -- end of the README's example
    assert sm.sessions.absolute_timeout == sm.sessions.idle_timeout == 7 * DAY
    await sm.aclose()
    for url, driver in [
        ("postgresql://user:pass@localhost/mydb", "asyncpg"),
        ("mysql://user:pass@localhost/mydb", "asyncmy"),
        ("sqlite:///sessions.db", "aiosqlite"),
    ]:
        sm = SessionManager(db_url=url)
        assert sm.store.engine.dialect.driver == driver
        await sm.aclose()


def test_sqlalchemy_manager_has_the_readme_api() -> None:
    api = {
        "create_user": ["username", "password"],
        "get_user": ["username"],
        "authenticate_user": ["username", "password"],
        "create_session": ["user_id"],
        "validate_session": ["token"],
        "revoke_session": ["token"],
        "revoke_sessions": ["user_id"],
        "login": ["username", "password"],
        "logout": ["token"],
    }
    for name, params in api.items():
        method = getattr(SessionManager, name)
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters)[1:] == params, name
    init = list(inspect.signature(SessionManager).parameters.values())
    assert [(p.name, p.default) for p in init[:2]] == [
        ("db_url", None),
        ("session_duration_days", 30),
    ]


# -- the adapter on every kind ----------------------------------------------------------

KINDS = ["memory", "file", "redis", "mongo", "sql"]


@pytest.fixture(params=KINDS)
def adapter_args(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Each kind's older config keys (and a Redis prefix of the test's own)."""
    kind: str = request.param
    config: dict[str, Any] = {"session_expiry_minutes": 30}
    options: dict[str, Any] = {}
    if kind == "file":
        config["storage_dir"] = str(tmp_path / "sessions")  # privacy mode: its own key file
    elif kind == "redis":
        spec: StoreSpec = request.getfixturevalue("redis_store_spec")
        url = urlsplit(spec.url)
        config |= {"redis_host": url.hostname, "redis_port": url.port, "redis_db": url.path[1:]}
        config["encryption_key"] = SECRET
        options["prefix"] = spec.options["prefix"]
    elif kind == "mongo":
        try:
            spec = request.getfixturevalue("mongodb_store_spec")
        except pytest.FixtureLookupError:
            unavailable("the mongodb_store_spec fixture", "load the tests.backends.mongo plugin")
        config |= {"connection_string": spec.url, "db_name": urlsplit(spec.url).path[1:]}
        config |= {"collection_name": "sessions", "encryption_key": SECRET}
    elif kind == "sql":
        config |= {"db_url": f"sqlite:///{tmp_path / 'sessions.db'}", "encryption_key": SECRET}
    return kind, config, options


@pytest.fixture
async def adapter(
    adapter_args: tuple[str, dict[str, Any], dict[str, Any]], clock: FakeClock
) -> AsyncIterator[SessionAdapter]:
    """An adapter per kind, configured by the older keys only (plus a clock and prefix)."""
    kind, config, options = adapter_args
    adapter = get_session_adapter(kind, config, clock=clock, store_options=options)
    try:
        yield adapter
    finally:
        try:
            await adapter.clear_all_sessions()
        finally:
            await adapter.aclose()


async def test_adapter_create_validate_delete(adapter: SessionAdapter) -> None:
    token = await adapter.create_session("user123", {"role": "admin", "tags": ["a"]})
    other = await adapter.create_session("user123")
    expected = {"role": "admin", "tags": ["a"], "user_id": "user123"}
    assert await adapter.validate_session(token) == (True, VALID, expected)
    assert await adapter.delete_session(token) is True
    assert await adapter.validate_session(token) == (False, "Invalid or expired session", None)
    assert await adapter.delete_session(token) is False
    assert await adapter.validate_session(other) == (True, VALID, {"user_id": "user123"})
    for bad in ["", "x" * 43, token[:-1], None, 123]:
        assert await adapter.validate_session(bad) == (False, INVALID, None)
    with pytest.raises(ValueError, match="user_id"):
        await adapter.create_session("user123", {"user_id": "someone-else"})


async def test_adapter_sessions_expire_after_idle_minutes(
    adapter: SessionAdapter, clock: FakeClock
) -> None:
    token = await adapter.create_session("user123")
    clock.advance(29 * MINUTE)
    assert (await adapter.validate_session(token))[0] is True  # renews: a sliding timeout
    clock.advance(29 * MINUTE)
    assert (await adapter.validate_session(token))[0] is True
    clock.advance(30 * MINUTE + 1)
    assert await adapter.validate_session(token) == (False, INVALID, None)


async def test_adapter_clear_all_sessions_wipes(adapter: SessionAdapter) -> None:
    tokens = [await adapter.create_session(f"user{i}") for i in range(3)]
    assert await adapter.clear_all_sessions() == 3
    for token in tokens:
        assert await adapter.validate_session(token) == (False, INVALID, None)
    assert await adapter.clear_all_sessions() == 0


async def test_adapter_absolute_timeout_is_a_day(clock: FakeClock) -> None:
    async with get_session_adapter("memory", clock=clock) as adapter:  # runs the sweeper
        token = await adapter.create_session("user123")
        for _ in range(int(DAY // (50 * MINUTE))):
            clock.advance(50 * MINUTE)
            assert (await adapter.validate_session(token))[0] is True
        clock.advance(DAY - int(DAY // (50 * MINUTE)) * 50 * MINUTE)
        assert (await adapter.validate_session(token))[0] is False
    longer = get_session_adapter("memory", {"session_expiry_minutes": 2 * 24 * 60})
    assert longer.manager.absolute_timeout == 2 * DAY
    await longer.aclose()


# -- the adapter's configuration ---------------------------------------------------------


def test_adapter_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ConfigurationError, match="kinds: memory, file, redis, mongo, sql"):
        get_session_adapter("postgres")


@pytest.mark.parametrize("kind", ["redis", "mongo", "sql"])
async def test_adapter_privacy_mode_needs_an_encryption_key_at_rest(kind: str) -> None:
    with pytest.raises(ConfigurationError, match="needs an encryption_key"):
        get_session_adapter(kind)
    clear = get_session_adapter(kind, {"privacy_mode": False})  # connects nothing yet
    assert clear.manager.privacy_mode is False
    await clear.aclose()


@pytest.mark.parametrize(
    ("kind", "config", "match"),
    [
        ("redis", {"storage_dir": "/tmp/x"}, "'storage_dir' is a setting of kind 'file'"),
        ("memory", {"db_url": "sqlite://"}, "'db_url' is a setting of kind 'sql'"),
        ("file", {"session_expiry_minutez": 5}, "unknown setting 'session_expiry_minutez'"),
        ("memory", {"privacy_mode": "maybe"}, "privacy_mode must be true or false"),
        ("memory", {"session_expiry_minutes": 0}, "positive"),
        ("sql", {"db_url": "redis://", "encryption_key": SECRET}, "SQLAlchemy URL"),
    ],
)
def test_adapter_bad_settings_are_configuration_errors(
    kind: str, config: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        get_session_adapter(kind, config)


async def test_adapter_file_defaults_to_home_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    adapter = get_session_adapter("file")
    assert isinstance(adapter.manager.store, FileStore)
    assert adapter.manager.store.root == tmp_path / ".sessions"
    assert adapter.manager.idle_timeout == 60 * MINUTE and adapter.manager.privacy_mode is True
    await adapter.aclose()


def test_older_mongo_and_sql_keys_make_urls() -> None:
    config = {"connection_string": "mongodb://h:1/old?directConnection=true", "db_name": "app"}
    assert settings_from_mapping(config) == {
        "store": "mongodb://h:1/app?directConnection=true&collection=sessions"
    }
    assert settings_from_mapping({"db_url": "sqlite:///x.db"}) == {"store": "sqlite:///x.db"}


# -- the SQLAlchemy manager on SQLite and PostgreSQL ------------------------------------


async def _drop_users_table(url: str, table: str) -> None:
    store = SQLStore.from_url(url)
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(users_table(sa.MetaData(), table).drop, checkfirst=True)
    finally:
        await store.aclose()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_spec(request: pytest.FixtureRequest) -> StoreSpec:
    """A database of the test's own: a SQLite file, or a PostgreSQL table (dropped after)."""
    spec: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return spec


@pytest.fixture
async def sql_manager(sql_spec: StoreSpec, clock: FakeClock) -> AsyncIterator[SessionManager]:
    """A compat manager over ``sql_spec`` (its users table dropped afterwards too)."""
    table = sql_spec.options.get("table")
    users = {"table": f"{table}_users"} if table else {}
    sm = SessionManager(
        sql_spec.url,
        session_duration_days=7,
        clock=clock,
        hasher=FAST,
        store_options=sql_spec.options,
        accounts_options=users,
    )
    try:
        yield sm
    finally:
        await sm.aclose()
        if users:
            await _drop_users_table(sql_spec.url, users["table"])


async def test_sql_users(sql_manager: SessionManager) -> None:
    alice = await sql_manager.create_user("alice", PASSWORD)
    assert alice.username == "alice" and alice.id
    with pytest.raises(UserExists):
        await sql_manager.create_user("Alice", "another password")
    assert await sql_manager.get_user("ALICE") == alice
    assert await sql_manager.get_user("bob") is None
    assert await sql_manager.authenticate_user("alice", PASSWORD) == alice
    assert await sql_manager.authenticate_user("alice", PASSWORD + "!") is None
    assert await sql_manager.authenticate_user("bob", PASSWORD) is None


async def test_sql_sessions_login_logout_revoke(sql_manager: SessionManager) -> None:
    alice = await sql_manager.create_user("alice", PASSWORD)
    bob = await sql_manager.create_user("bob", PASSWORD)
    assert await sql_manager.login("alice", "wrong") is None
    assert await sql_manager.login("carol", PASSWORD) is None
    token = await sql_manager.login("alice", PASSWORD)
    assert token is not None
    assert await sql_manager.validate_session(token) == alice
    by_id, by_user = (
        await sql_manager.create_session(alice.id),
        await sql_manager.create_session(alice),
    )
    bobs = await sql_manager.create_session(bob.id)
    assert await sql_manager.validate_session(by_id) == await sql_manager.validate_session(by_user)
    assert await sql_manager.validate_session(bobs) == bob

    assert await sql_manager.revoke_session(by_id) is True
    assert await sql_manager.revoke_session(by_id) is False
    assert await sql_manager.validate_session(by_id) is None
    assert await sql_manager.logout(token) is True
    assert await sql_manager.logout(token) is False
    assert await sql_manager.validate_session(token) is None

    more = [await sql_manager.login("alice", PASSWORD) for _ in range(2)]
    assert await sql_manager.revoke_sessions(alice.id) == 3  # by_user and the two logins
    for t in [by_user, *more]:
        assert await sql_manager.validate_session(t) is None
    assert await sql_manager.validate_session(bobs) == bob
    assert await sql_manager.revoke_sessions(alice) == 0

    with pytest.raises(UnknownUser):
        await sql_manager.create_session("no-such-user")
    with pytest.raises(TypeError, match="str"):
        await sql_manager.create_session(1)  # type: ignore[arg-type]
    assert await sql_manager.validate_session("not a token") is None


async def test_sql_sessions_last_session_duration_days(
    sql_manager: SessionManager, clock: FakeClock
) -> None:
    await sql_manager.create_user("alice", PASSWORD)
    token = await sql_manager.login("alice", PASSWORD)
    assert token is not None
    clock.advance(6 * DAY)
    assert await sql_manager.validate_session(token) is not None  # use does not extend it
    clock.advance(DAY - 1)
    assert await sql_manager.validate_session(token) is not None
    clock.advance(2)
    assert await sql_manager.validate_session(token) is None


async def test_sql_deleted_user_has_no_session(sql_manager: SessionManager) -> None:
    await sql_manager.create_user("alice", PASSWORD)
    token = await sql_manager.login("alice", PASSWORD)
    assert await sql_manager.accounts.delete_user("alice")
    assert await sql_manager.validate_session(token) is None


@pytest.mark.parametrize("secret", [None, SECRET])
async def test_sql_sessions_are_sealed_only_with_a_secret(
    tmp_path: Path, secret: str | None
) -> None:
    async with SessionManager(f"sqlite:///{tmp_path / 'app.db'}", secret=secret, hasher=FAST) as sm:
        await sm.create_user("alice", PASSWORD)
        assert await sm.login("alice", PASSWORD) is not None
        async with sm.store.engine.connect() as conn:
            payloads = (await conn.execute(sa.select(sm.store.table.c.payload))).scalars().all()
    assert len(payloads) == 1
    assert (b"alice" in payloads[0]) is (secret is None)


def test_sql_manager_refuses_other_urls() -> None:
    with pytest.raises(ConfigurationError, match="SQLAlchemy URL") as raised:
        SessionManager("redis://:hunter2@localhost/0")
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigurationError, match="known schemes"):
        SessionManager("postgres://localhost/db")
