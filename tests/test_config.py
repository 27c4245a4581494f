from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from asyncsess import ConfigurationError, SessionManager
from asyncsess.config import settings_from_env, settings_from_mapping
from asyncsess.stores.file import FileStore
from tests.conftest import OTHER_SECRET, SECRET

pytestmark = pytest.mark.anyio


async def test_older_manager_keys(tmp_path: Path) -> None:
    config = {
        "session_expiry_minutes": 30,
        "privacy_mode": True,
        "storage_dir": str(tmp_path / "sessions"),
        "encryption_key": SECRET,
    }
    mgr = SessionManager.from_config(config)
    assert isinstance(mgr.store, FileStore) and mgr.store.root == tmp_path / "sessions"
    assert mgr.idle_timeout == 1800.0 and mgr.privacy_mode is True
    token = await mgr.create("alice")
    assert await mgr.validate(token) is not None
    await mgr.aclose()


def test_legacy_redis_and_mongo_keys_make_urls() -> None:
    redis = settings_from_mapping(
        {"redis_host": "cache", "redis_port": 6380, "redis_db": 2, "redis_password": "p@ss"}
    )
    assert redis == {"store": "redis://:p%40ss@cache:6380/2"}
    mongo = settings_from_mapping(
        {"connection_string": "mongodb://db:27017/", "db_name": "app", "collection_name": "s"}
    )
    assert mongo == {"store": "mongodb://db:27017/app?collection=s"}


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigurationError, match="session_expiry_minutez"):
        settings_from_mapping({"session_expiry_minutez": 5})
    with pytest.raises(ConfigurationError, match="privacy_mode"):
        settings_from_mapping({"privacy_mode": "maybe"})


def test_environment() -> None:
    env = {
        "ASYNCSESS_URL": "memory://",
        "ASYNCSESS_SECRET": f"{OTHER_SECRET}, {SECRET}",
        "ASYNCSESS_IDLE_TIMEOUT": "120",
        "ASYNCSESS_ABSOLUTE_TIMEOUT": "7200",
        "ASYNCSESS_PRIVACY_MODE": "false",
        "ASYNCSESS_SWEEP_INTERVAL": "30",
        "ASYNCSESS_RENEW_FRACTION": "0.25",
    }
    assert settings_from_env(env) == {
        "store": "memory://",
        "secret": [OTHER_SECRET, SECRET],
        "idle_timeout": 120.0,
        "absolute_timeout": 7200.0,
        "privacy_mode": False,
        "sweep_interval": 30.0,
        "renew_fraction": 0.25,
    }
    mgr = SessionManager.from_env(env, absolute_timeout=timedelta(hours=3))
    assert (mgr.idle_timeout, mgr.absolute_timeout, mgr.renew_fraction) == (120.0, 10800.0, 0.25)
    with pytest.raises(ConfigurationError, match="ASYNCSESS_IDLE_TIMEOUT"):
        settings_from_env({"ASYNCSESS_IDLE_TIMEOUT": "ten"})
    assert settings_from_env({}) == {}


def test_limits_and_cache_sizes_from_the_environment_and_a_mapping() -> None:
    env = {
        "ASYNCSESS_MAX_DATA_BYTES": "1024",
        "ASYNCSESS_MAX_SESSIONS_PER_USER": "3",
        "ASYNCSESS_DECODE_CACHE": "50",
        "ASYNCSESS_DECODE_CACHE_BYTES": "100000",
    }
    settings = {
        "max_data_bytes": 1024,
        "max_sessions_per_user": 3,
        "decode_cache": 50,
        "decode_cache_bytes": 100000,
    }
    assert settings_from_env(env) == settings
    assert settings_from_mapping(settings) == settings
    mgr = SessionManager.from_env(env)
    assert (mgr.max_sessions_per_user, mgr.decode_cache) == (3, 50)
    none = {"ASYNCSESS_MAX_DATA_BYTES": "none", "ASYNCSESS_MAX_SESSIONS_PER_USER": "None"}
    assert settings_from_env(none) == {"max_data_bytes": None, "max_sessions_per_user": None}
    for name, bad in [("MAX_DATA_BYTES", "-1"), ("DECODE_CACHE", "none"), ("DECODE_CACHE", "1k")]:
        with pytest.raises(ConfigurationError, match=f"ASYNCSESS_{name}"):
            settings_from_env({f"ASYNCSESS_{name}": bad})


async def test_max_data_bytes_from_the_environment_is_enforced() -> None:
    mgr = SessionManager.from_env({"ASYNCSESS_MAX_DATA_BYTES": "40"})
    await mgr.create("alice", {"cart": [1, 2, 3]})
    with pytest.raises(ValueError, match="max_data_bytes=40"):
        await mgr.create("alice", {"cart": list(range(100))})
    await mgr.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        "sqlite+aiosqlite:///sessions.db",
        "redis://localhost:6379/2",
    ],
)
def test_a_connection_string_that_is_not_mongodb_is_the_store_url(url: str) -> None:
    """Only a mongodb:// connection string gets a database and collection put in."""
    assert settings_from_mapping({"connection_string": url}) == {"store": url}
    with pytest.raises(ConfigurationError, match="db_name and collection_name apply to a mongodb"):
        settings_from_mapping({"connection_string": url, "db_name": "app"})
    srv = settings_from_mapping({"connection_string": "mongodb+srv://c.example.net/"})
    assert srv == {"store": "mongodb+srv://c.example.net/session_db?collection=sessions"}


async def test_from_config_with_a_postgresql_connection_string_reaches_it() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    options = {"table": "asyncsess_config_conn_string"}
    async with SessionManager.from_config(
        {"connection_string": url, "encryption_key": SECRET}, store_options=options
    ) as mgr:
        token = await mgr.create("alice", {"cart": [1, 2]})
        session = await mgr.validate(token)
        assert session is not None and session.data["cart"] == (1, 2)
        assert await mgr.wipe() == 1
