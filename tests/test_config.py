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
