"""Turning the near cache on: the stores that cannot report changes are refused with a
message naming those that can; ``memory://`` needs no channel; settings are checked; on
PostgreSQL the notify trigger comes with the table, or from the migration an app that
owns its schema runs, and any change to a row (by hand too) is heard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import asyncsess
from asyncsess import ConfigurationError, SessionManager
from asyncsess.stores.memory import MemoryStore
from asyncsess.stores.sql import drop_notify_trigger_sql, notify_trigger_sql
from tests.backends import StoreSpec
from tests.conftest import SECRET, FakeClock

from .conftest import eventually, manager
from .faults import pg_execute
from .fleet import nested

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "mariadb", "mongodb", "file"])
def deaf_spec(request: pytest.FixtureRequest) -> StoreSpec:
    """A store whose changes cannot be heard."""
    spec: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return spec


async def test_stores_that_cannot_report_changes_are_refused(deaf_spec: StoreSpec) -> None:
    store = asyncsess.open_store(deaf_spec.url, **deaf_spec.options)
    try:
        with pytest.raises(ConfigurationError) as refused:
            SessionManager(store, secret=SECRET, near_cache=100)
    finally:
        await store.aclose()
    message = str(refused.value)
    assert "Redis" in message and "PostgreSQL" in message and "near_cache=0" in message


class AppStore(MemoryStore):
    """A store of an app's own that keeps sessions at rest (as far as asyncsess knows)."""

    persistent = True


async def test_a_store_of_the_apps_own_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="Redis Cluster"):
        SessionManager(AppStore(), secret=SECRET, near_cache=10)


async def test_memory_needs_no_channel() -> None:
    async with SessionManager("memory://", near_cache=100) as mgr:
        token = await mgr.create("ann", nested(1))
        assert await mgr.validate(token) is not None
        assert await mgr.revoke(token) and await mgr.validate(token) is None
        stats = await mgr.stats()
        assert stats.near_cache_hits == stats.near_cache_misses == 0  # the store is memory


@pytest.mark.parametrize(
    ("setting", "value"),
    [("near_cache", -1), ("near_cache", "many"), ("near_cache_ttl", 0), ("near_cache_ttl", -5)],
)
async def test_bad_settings_are_refused(setting: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        SessionManager("memory://", **{setting: value})


@pytest.fixture
async def pg_table(postgresql_store_spec: StoreSpec) -> AsyncIterator[StoreSpec]:
    """A sessions table made by a manager without the near cache (so without the trigger),
    as an app that owns its schema has it before the migration."""
    async with manager(postgresql_store_spec):
        pass
    yield postgresql_store_spec


async def test_without_the_trigger_and_create_table_false_the_migration_is_named(
    pg_table: StoreSpec, clock: FakeClock
) -> None:
    spec = StoreSpec(pg_table.url, {**pg_table.options, "create_table": False})
    table = pg_table.options["table"]
    with pytest.raises(ConfigurationError, match=f"notify_trigger_sql\\('{table}'\\)"):
        async with manager(spec, clock, near_cache=100):
            pass
    await pg_execute(spec.url, notify_trigger_sql(table))  # the app's migration
    async with manager(spec, clock, near_cache=100) as mgr, manager(spec, clock) as other:
        token = await mgr.create("bea", nested(1))
        assert await mgr.validate(token) is not None and await mgr.validate(token) is not None
        assert await other.revoke(token)
        await eventually(lambda: _none(mgr, token))


async def _none(mgr: SessionManager, token: str) -> bool:
    return await mgr.validate(token) is None


async def test_a_row_changed_by_hand_is_heard(pg_table: StoreSpec, clock: FakeClock) -> None:
    table = pg_table.options["table"]
    async with manager(pg_table, clock, near_cache=100) as mgr:
        tokens = [await mgr.create("cy", nested(i)) for i in range(3)]
        for token in tokens * 2:
            assert await mgr.validate(token) is not None
        session = await mgr.validate(tokens[0])
        assert session is not None
        await pg_execute(pg_table.url, f'DELETE FROM "{table}" WHERE key = $1', session.id)
        await eventually(lambda: _none(mgr, tokens[0]))
        await pg_execute(pg_table.url, f'TRUNCATE "{table}"')  # every session at once
        await eventually(lambda: _none(mgr, tokens[1]))
        assert await mgr.validate(tokens[2]) is None
        assert (await mgr.stats()).near_cache_resets == 0  # heard, not lost


async def test_a_trigger_dropped_at_runtime_stops_the_cache_until_it_is_back(
    pg_table: StoreSpec, clock: FakeClock
) -> None:
    table = pg_table.options["table"]
    async with manager(pg_table, clock, near_cache=100) as mgr:
        token = await mgr.create("di", nested(1))
        assert await mgr.validate(token) is not None
        await pg_execute(pg_table.url, drop_notify_trigger_sql(table))
        await eventually(lambda: _resets(mgr), within=2)  # the heartbeat checks it
        # the store creates its schema: the channel puts the trigger back and serves again
        await eventually(lambda: _hit(mgr, token), within=5)
        await pg_execute(pg_table.url, f'DELETE FROM "{table}"')
        await eventually(lambda: _none(mgr, token))


async def _resets(mgr: SessionManager) -> bool:
    return (await mgr.stats()).near_cache_resets >= 1


async def _hit(mgr: SessionManager, token: str) -> bool:
    before = (await mgr.stats()).near_cache_hits
    return await mgr.validate(token) is not None and (await mgr.stats()).near_cache_hits > before


async def test_the_environment_and_a_mapping_turn_it_on(redis_store_spec: StoreSpec) -> None:
    env = {
        "ASYNCSESS_URL": redis_store_spec.url,
        "ASYNCSESS_SECRET": SECRET,
        "ASYNCSESS_NEAR_CACHE": "100",
        "ASYNCSESS_NEAR_CACHE_TTL": "2.5",
    }
    config = {"store": redis_store_spec.url, "secret": SECRET, "near_cache": 100}
    options = {"store_options": redis_store_spec.options}
    for mgr in (
        SessionManager.from_env(env, **options),
        SessionManager.from_config(config, **options),
    ):
        async with mgr:
            token = await mgr.create("eve", nested(1))
            assert await mgr.validate(token) is not None and await mgr.validate(token) is not None
            assert (await mgr.stats()).near_cache_hits == 1
    with pytest.raises(ConfigurationError, match="ASYNCSESS_NEAR_CACHE_TTL"):
        SessionManager.from_env({**env, "ASYNCSESS_NEAR_CACHE_TTL": "soon"})
