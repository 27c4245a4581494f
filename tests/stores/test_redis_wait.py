"""Redis durability: ``wait_replicas`` makes every write wait for replicas (``WAIT``) and
fail closed when they do not answer, so an acknowledged create survives a failover. Real
private ``redis-server`` processes (a primary and its replica), never mocks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from redis import Redis

from asyncsess import ConfigurationError, SessionManager, StoreUnavailable
from asyncsess.stores.redis import RedisStore
from benchmarks.soak.relay import Relay
from benchmarks.soak.servers import ReplicatedCluster
from tests.backends import unavailable
from tests.backends.redis import SERVER_HOW, RedisProcess, unique_prefix
from tests.redis_cluster import HOST, cluster_available, spare_port, wait_until

pytestmark = pytest.mark.anyio

SECRET = "redis-wait-secret-0123456789-abcdefghijklmnop"
DATA = {"cart": [{"sku": "a-1", "qty": 2}], "prefs": {"langs": ["en", "fr"]}}


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    """A private primary and a replica of it, in sync."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server", SERVER_HOW)
    primary = RedisProcess(tmp_path / "primary", spare_port())
    primary.start()
    replica = RedisProcess(
        tmp_path / "replica", spare_port(), "--replicaof", HOST, str(primary.port)
    )
    try:
        replica.start()

        def linked() -> bool:
            with Redis(host=HOST, port=replica.port, socket_timeout=1) as client:
                return bool(client.info("replication").get("master_link_status") == "up")

        wait_until(linked, "the replica to sync")
        yield primary, replica
    finally:
        replica.kill()
        primary.kill()


async def test_an_acknowledged_create_is_on_the_replica(
    primary_and_replica: tuple[RedisProcess, RedisProcess],
) -> None:
    primary, replica = primary_and_replica
    prefix = unique_prefix()
    url = f"{primary.url}?wait_replicas=1&wait_timeout=2"
    async with (
        SessionManager(url, secret=SECRET, store_options={"prefix": prefix}) as mgr,
        SessionManager(replica.url, secret=SECRET, store_options={"prefix": prefix}) as on_replica,
    ):
        token = await mgr.create("alice", DATA)
        session = await on_replica.validate(token)  # no wait: WAIT already saw it there
        assert session is not None and session.data["cart"][0]["sku"] == "a-1"
        assert await mgr.update(token, {**DATA, "step": 2})
        again = await on_replica.validate(token)
        assert again is not None and again.data["step"] == 2
        assert await mgr.revoke(token)
        assert await on_replica.validate(token) is None


async def test_a_failover_loses_an_acknowledged_create_unless_it_waited(tmp_path: Path) -> None:
    """The window the option closes. The replica's link runs through a relay that goes
    silent; the primary dies; the replica is promoted. A create acknowledged without WAIT
    is gone; with WAIT the same create was refused, never acknowledged."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server", SERVER_HOW)
    primary = RedisProcess(tmp_path / "primary", spare_port())
    primary.start()
    relay = Relay(primary.port)
    await relay.start()
    replica = RedisProcess(tmp_path / "replica", spare_port(), "--replicaof", HOST, str(relay.port))
    try:
        await anyio.to_thread.run_sync(replica.start)

        def linked() -> bool:
            with Redis(host=HOST, port=replica.port, socket_timeout=1) as client:
                return bool(client.info("replication").get("master_link_status") == "up")

        await anyio.to_thread.run_sync(wait_until, linked, "the replica to sync")
        options = {"prefix": unique_prefix()}
        waiting = f"{primary.url}?wait_replicas=1&wait_timeout=0.3"
        async with (
            SessionManager(primary.url, secret=SECRET, store_options=options) as plain,
            SessionManager(waiting, secret=SECRET, store_options=options) as durable,
        ):
            kept = await durable.create("carol", DATA)  # on the replica before the fault
            relay.blackhole()  # the replica hears nothing more
            lost = await plain.create("alice", DATA)  # acknowledged all the same
            with pytest.raises(StoreUnavailable, match="replicas"):
                await durable.create("bob", DATA)  # refused: not acknowledged
            primary.kill()
            relay.heal()
            with Redis(host=HOST, port=replica.port, socket_timeout=1) as client:
                client.execute_command("REPLICAOF", "NO", "ONE")  # the failover
        async with SessionManager(replica.url, secret=SECRET, store_options=options) as promoted:
            assert await promoted.validate(kept) is not None
            assert await promoted.validate(lost) is None  # acknowledged, then lost
    finally:
        await relay.aclose()
        replica.kill()
        primary.kill()


async def test_writes_fail_closed_while_the_replica_does_not_answer(
    primary_and_replica: tuple[RedisProcess, RedisProcess],
) -> None:
    primary, replica = primary_and_replica
    url = f"{primary.url}?wait_replicas=1&wait_timeout=0.3&timeout=3"
    async with SessionManager(url, secret=SECRET, store_options={"prefix": unique_prefix()}) as mgr:
        token = await mgr.create("alice", DATA)
        replica.pause()
        try:
            with pytest.raises(StoreUnavailable, match="replicas"):
                await mgr.create("bob", DATA)
            assert await mgr.validate(token) is not None  # a read needs no replica
            with pytest.raises(StoreUnavailable, match="replicas"):
                await mgr.revoke_all("alice")  # not acknowledged (the primary may have it)
        finally:
            replica.resume()
        assert await mgr.revoke_all("alice") in (0, 1)
        assert await mgr.validate(token) is None


async def test_without_a_replica_nothing_is_acknowledged(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server", SERVER_HOW)
    server = RedisProcess(tmp_path / "lone", spare_port())
    server.start()
    try:
        store = RedisStore.from_url(server.url, wait_replicas=1, wait_timeout=0.1)
        async with SessionManager(store, secret=SECRET) as mgr:
            with pytest.raises(StoreUnavailable, match="0 of the 1 Redis replicas"):
                await mgr.create("alice", DATA)
        await store.aclose()
    finally:
        server.kill()


async def test_on_a_cluster_each_write_waits_on_the_node_that_took_it(tmp_path: Path) -> None:
    """With every replica paused, no write is acknowledged: had WAIT gone to any other
    connection than the write's, it would have counted the replicas' earlier offsets."""
    if not cluster_available():
        unavailable("redis-server and redis-cli (for a Redis Cluster)", SERVER_HOW)
    cluster = ReplicatedCluster(tmp_path / "cluster")
    cluster.start()
    try:
        store = RedisStore.from_url(cluster.url, prefix=unique_prefix(), wait_replicas=1)
        async with SessionManager(store, secret=SECRET) as mgr:
            tokens = [await mgr.create(f"user-{i}", DATA) for i in range(12)]  # every node
            replicas = cluster.replicas()
            for node in replicas:
                node.pause()
            try:
                for i in range(6):
                    with pytest.raises(StoreUnavailable, match="replicas"):
                        await mgr.create(f"other-{i}", DATA)
            finally:
                for node in replicas:
                    node.resume()
            assert [await mgr.revoke(token) for token in tokens] == [True] * 12
        await store.wipe()
        await store.aclose()
    finally:
        cluster.stop()


@pytest.mark.parametrize(
    "options",
    [{"wait_replicas": -1}, {"wait_replicas": 1.5}, {"wait_timeout": 0}, {"wait_timeout": "x"}],
    ids=repr,
)
def test_bad_durability_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        RedisStore(Redis(), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query", ["wait_replicas=x", "wait_replicas=-1", "wait_timeout=soon", "wait_timeout=0"]
)
def test_bad_durability_options_in_the_url_are_configuration_errors(query: str) -> None:
    with pytest.raises(ConfigurationError, match=query.partition("=")[0]):
        RedisStore.from_url(f"redis://127.0.0.1:6379/0?{query}")


async def test_durability_options_from_the_url_take_effect() -> None:
    url = "redis://127.0.0.1:6379/0?wait_replicas=1&wait_timeout=0.2"
    options = {"prefix": unique_prefix()}
    async with SessionManager(url, secret=SECRET, store_options=options) as mgr:
        # the machine's Redis has no replica: a write waits 0.2 s for one, then fails
        with pytest.raises(StoreUnavailable, match="replicas"):
            await mgr.create("ann", DATA)
        await mgr.store.wipe()
