"""A server that is up but refuses to serve for now is ``StoreUnavailable`` (a web app's
503), never a plain ``StoreError`` (its 500): PostgreSQL starting up (SQLSTATE 57P03);
Redis out of memory (OOM), a primary turned replica by a failover (READONLY), a replica
cut off from its primary (MASTERDOWN). Each server is the test's own, really put in that
state; once it serves again, so does the store, sessions kept."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis import Redis

from asyncsess import SessionManager, StoreUnavailable
from asyncsess.accounts import Accounts
from asyncsess.session import thaw
from benchmarks.soak.servers import PostgresServer
from tests.backends.redis import RedisProcess, unique_prefix
from tests.redis_cluster import spare_port

from .conftest import SECRET
from .integrations.apps import Gates, fastapi_app
from .integrations.helpers import serve_asgi
from .test_accounts import fast_hasher

pytestmark = pytest.mark.anyio

DATA = {"cart": [{"sku": "pear", "qty": 2}], "prefs": {"theme": "dark"}}


@pytest.mark.slow
@pytest.mark.parametrize("direct_reads", [True, False], ids=["direct_reads", "engine"])
async def test_postgresql_starting_up_is_unavailable_then_serves_again(
    private_postgresql: PostgresServer, direct_reads: bool
) -> None:
    options: dict[str, Any] = {"timeout": 2.0, "direct_reads": direct_reads}
    async with SessionManager(private_postgresql.url, secret=SECRET, store_options=options) as mgr:
        accounts = Accounts(mgr.store, hasher=fast_hasher())
        await accounts.create_user("ann", "correct horse battery")
        token = await mgr.create("ann", DATA)
        private_postgresql.refuse_connections()
        try:
            said = []
            for call in (
                lambda: mgr.validate(token),  # may first find a pooled connection closed
                lambda: mgr.validate(token),
                lambda: mgr.create("bob", DATA),
                lambda: mgr.update(token, {**DATA, "seen": 1}),
                lambda: mgr.revoke(token),
                lambda: accounts.get_user("ann"),
            ):
                with pytest.raises(StoreUnavailable) as refused:
                    await call()
                said.append(str(refused.value))
            assert sum("not accepting connections" in s for s in said) >= 4, said
            async with (
                serve_asgi(fastapi_app(mgr, Gates())) as url,
                httpx.AsyncClient(base_url=url) as client,
            ):
                response = await client.get("/read", headers={"cookie": f"__Host-session={token}"})
                assert response.status_code == 503
        finally:
            private_postgresql.refuse_connections(False)
        session = await mgr.validate(token)
        assert session is not None and thaw(session.data) == DATA
        assert await accounts.get_user("ann") is not None


async def test_redis_refusing_for_now_is_unavailable_then_serves_again(
    redis_process: RedisProcess,
) -> None:
    options = {"prefix": unique_prefix(), "timeout": 2.0}
    admin = Redis.from_url(redis_process.url)
    async with SessionManager(redis_process.url, secret=SECRET, store_options=options) as mgr:
        token = await mgr.create("ann", DATA)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # full: every write refused with OOM
        with pytest.raises(StoreUnavailable, match="cannot serve now: OutOfMemoryError"):
            await mgr.create("bob", DATA)
        with pytest.raises(StoreUnavailable, match="cannot serve now: OutOfMemoryError"):
            await mgr.update(token, {**DATA, "seen": 1})
        assert await mgr.validate(token) is not None  # reads are still served
        admin.config_set("maxmemory", 0)

        admin.replicaof("127.0.0.1", spare_port())  # a failover made it a replica
        with pytest.raises(StoreUnavailable, match="cannot serve now: ReadOnlyError"):
            await mgr.create("bob", DATA)
        admin.config_set("replica-serve-stale-data", "no")  # and its primary is gone
        with pytest.raises(StoreUnavailable, match="cannot serve now: MasterDownError"):
            await mgr.validate(token)
        async with (
            serve_asgi(fastapi_app(mgr, Gates())) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            response = await client.get("/read", headers={"cookie": f"__Host-session={token}"})
            assert response.status_code == 503

        admin.replicaof("no", "one")  # promoted again: it serves, sessions kept
        session = await mgr.validate(token)
        assert session is not None and thaw(session.data) == DATA
        assert await mgr.validate(await mgr.create("bob", DATA)) is not None
        await mgr.store.wipe()
    admin.close()
