"""The near cache's channel under faults: cut from the outside (``CLIENT KILL``,
``pg_terminate_backend``), lost without a sound (a paused server, a blackholed network
path: the heartbeat), servers restarted, a Redis Cluster failing over. In every case the
cache is dropped whole, nothing cached is served past the bound, validates read the
store (failing closed while it is down) and the cache serves again once resubscribed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis import Redis

from asyncsess import SessionManager, StoreError, StoreUnavailable
from benchmarks.soak.relay import Relay
from benchmarks.soak.servers import PostgresServer, ReplicatedCluster
from tests.backends import StoreSpec, unavailable
from tests.backends.redis import RedisProcess, unique_prefix
from tests.backends.sql import POSTGRESQL_URL
from tests.conftest import FakeClock
from tests.redis_cluster import cluster_available, redis_cluster

from .conftest import eventually, manager
from .faults import kill_channels
from .fleet import nested

pytestmark = pytest.mark.anyio

#: The channel's own bound: a silent loss stops the cache within a second.
LOSS_BOUND = 1.0


async def _hits(mgr: SessionManager) -> int:
    return (await mgr.stats()).near_cache_hits


async def _resets(mgr: SessionManager, least: int) -> bool:
    try:
        return (await mgr.stats()).near_cache_resets >= least
    except StoreError:  # stats count the store's sessions too: not while it is down
        return False


async def _serving(mgr: SessionManager, token: str) -> bool:
    """Whether a validate of ``token`` is now answered from memory."""
    try:
        before = await _hits(mgr)
        return await mgr.validate(token) is not None and await _hits(mgr) > before
    except StoreError:  # down, or starting up
        return False


async def _served_until_refused(mgr: SessionManager, token: str, since: float) -> float:
    """Validate in a loop until the store's failure surfaces; return how long after ``since``
    the last session was handed out."""
    last = since
    while time.monotonic() - since < 10:
        try:
            if await mgr.validate(token) is not None:
                last = time.monotonic()
        except StoreUnavailable:
            return last - since
        await anyio.sleep(0.005)
    raise AssertionError("the store's failure never surfaced")


async def test_a_cut_channel_drops_the_cache_and_comes_back(
    near_spec: StoreSpec, clock: FakeClock, other: SessionManager
) -> None:
    async with manager(near_spec, clock, near_cache=100) as mgr:
        kept, revoked = [await mgr.create("jo", nested(i)) for i in range(2)]
        for token in (kept, revoked, kept, revoked):
            assert await mgr.validate(token) is not None
        assert await kill_channels(near_spec.url, near_spec.options) >= 1
        assert await other.revoke(revoked)  # while the channel is down: not heard
        await eventually(lambda: _resets(mgr, 1), within=LOSS_BOUND)
        assert await mgr.validate(revoked) is None  # the store was read
        await eventually(lambda: _serving(mgr, kept), within=5)  # resubscribed
        stats = await mgr.stats()
        assert stats.near_cache_resets == 1 and stats.near_cache_entries >= 1


@pytest.fixture
async def paused_redis(redis_process: RedisProcess) -> AsyncIterator[RedisProcess]:
    try:
        yield redis_process
    finally:
        redis_process.resume()


async def test_a_paused_redis_is_found_by_the_heartbeat(paused_redis: RedisProcess) -> None:
    options = {"prefix": unique_prefix(), "timeout": 0.3}
    spec = StoreSpec(paused_redis.url, options)
    async with manager(spec, near_cache=100) as mgr:
        token = await mgr.create("kim", nested(1))
        assert await mgr.validate(token) is not None and await _serving(mgr, token)
        paused_redis.pause()  # connections stay open; nothing answers, nothing is lost aloud
        served = await _served_until_refused(mgr, token, time.monotonic())
        assert served < LOSS_BOUND
        paused_redis.resume()
        await eventually(lambda: _resets(mgr, 1), within=5)
        await eventually(lambda: _serving(mgr, token), within=5)


async def test_a_restarted_redis_fails_closed_then_serves_again(
    redis_process: RedisProcess,
) -> None:
    spec = StoreSpec(redis_process.url, {"prefix": unique_prefix(), "timeout": 0.5})
    async with manager(spec, near_cache=100) as mgr:
        token = await mgr.create("lee", nested(1))
        assert await mgr.validate(token) is not None and await _serving(mgr, token)
        await anyio.to_thread.run_sync(redis_process.kill)
        since = time.monotonic()
        assert await _served_until_refused(mgr, token, since) < LOSS_BOUND
        with pytest.raises(StoreUnavailable):  # never the cached session, while it is down
            await mgr.validate(token)
        await anyio.to_thread.run_sync(redis_process.start)
        fresh = await mgr.create("lee", nested(2))  # the restart lost the old one (no disk)
        assert await mgr.validate(token) is None
        await eventually(lambda: _serving(mgr, fresh), within=5)
        assert (await mgr.stats()).near_cache_resets == 1


@pytest.fixture
async def pg_relay() -> AsyncIterator[Relay]:
    """A relay to the loopback PostgreSQL that the test can blackhole."""
    port = int(POSTGRESQL_URL.rsplit(":", 1)[1].split("/")[0])
    relay = Relay(port)
    await relay.start()
    try:
        yield relay
    finally:
        relay.heal()
        await relay.aclose()


async def test_a_blackholed_postgresql_is_found_by_the_heartbeat(
    pg_relay: Relay, postgresql_store_spec: StoreSpec
) -> None:
    port = POSTGRESQL_URL.rsplit(":", 1)[1].split("/")[0]
    # no TLS negotiation: asyncpg's, cut by the blackhole, leaves an unretrieved error behind
    url = POSTGRESQL_URL.replace(port, str(pg_relay.port)) + "?ssl=disable"
    spec = StoreSpec(url, {**postgresql_store_spec.options, "timeout": 0.5})
    async with manager(spec, near_cache=100) as mgr:
        token = await mgr.create("max", nested(1))
        assert await mgr.validate(token) is not None and await _serving(mgr, token)
        pg_relay.blackhole()
        served = await _served_until_refused(mgr, token, time.monotonic())
        assert served < LOSS_BOUND
        pg_relay.heal()
        await eventually(lambda: _resets(mgr, 1), within=5)
        await eventually(lambda: _serving(mgr, token), within=10)


@pytest.mark.slow
async def test_a_restarted_postgresql_fails_closed_then_serves_again(
    private_postgresql: PostgresServer,
) -> None:
    spec = StoreSpec(private_postgresql.url, {"timeout": 1.0})
    async with manager(spec, near_cache=100) as mgr:
        token = await mgr.create("ned", nested(1))
        assert await mgr.validate(token) is not None and await _serving(mgr, token)
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, private_postgresql.restart)
            await eventually(lambda: _resets(mgr, 1), within=30)
        await eventually(lambda: _serving(mgr, token), within=30)  # kept on disk, served again


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[ReplicatedCluster]:
    """A Redis Cluster of 3 primaries with a replica each, whose primaries may fail."""
    cluster = ReplicatedCluster(tmp_path / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_redis_cluster_failover_resubscribes_to_the_new_primary(
    replicated_cluster: ReplicatedCluster,
) -> None:
    options: dict[str, Any] = {"prefix": unique_prefix(), "timeout": 1.0}
    spec = StoreSpec(replicated_cluster.url, options)
    async with manager(spec, near_cache=1000) as mgr, manager(spec) as other:
        tokens = [await mgr.create("olga", nested(i)) for i in range(30)]  # on every primary
        for token in tokens * 2:
            assert await mgr.validate(token) is not None
        assert await other.validate(tokens[0]) is not None  # its client knows every node
        await anyio.to_thread.run_sync(
            lambda: replicated_cluster.kill(replicated_cluster.primary(1))
        )
        await anyio.to_thread.run_sync(replicated_cluster.wait_failover)
        await eventually(lambda: _resets(mgr, 1))  # (stats need every primary: not before)
        for token in tokens:  # answered from the store, then from memory again
            await eventually(lambda t=token: _serving(mgr, t), within=30)  # type: ignore[misc]
        assert await other.revoke(tokens[0])  # heard from whichever primary now holds it
        await eventually(lambda: _gone(mgr, tokens[0]))


async def _gone(mgr: SessionManager, token: str) -> bool:
    return await mgr.validate(token) is None


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[str]:
    """A 3-master Redis Cluster of the test's own, whose slots the test may move."""
    if not cluster_available():
        unavailable("redis-server and redis-cli (for a Redis Cluster)", "install redis-server")
    with redis_cluster(tmp_path / "cluster") as url:
        yield url


def _move_an_empty_slot(url: str) -> None:
    """Give one empty slot of the first primary to the second, on every node."""
    nodes = []
    with Redis.from_url(url.replace("redis+cluster://", "redis://")) as seed:
        for line in seed.execute_command("CLUSTER", "NODES").decode().splitlines():
            node_id, address, flags, *_, first = line.split()[:9]
            if "master" in flags:
                host, port = address.split("@")[0].rsplit(":", 1)
                nodes.append((node_id, host, int(port), int(first.split("-")[0])))
    target = nodes[1][0]
    with Redis(host=nodes[0][1], port=nodes[0][2]) as owner:
        slot = next(s for s in range(nodes[0][3], 16384) if not owner.cluster("countkeysinslot", s))
    for _, host, port, _ in nodes:
        with Redis(host=host, port=port) as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)


@pytest.mark.slow
async def test_a_moved_slot_resets_the_channel_onto_the_new_map(private_cluster: str) -> None:
    spec = StoreSpec(private_cluster, {"prefix": unique_prefix()})
    async with manager(spec, near_cache=100) as mgr:
        tokens = [await mgr.create("rae", nested(i)) for i in range(10)]
        for token in tokens * 2:
            assert await mgr.validate(token) is not None
        await anyio.to_thread.run_sync(_move_an_empty_slot, private_cluster)
        await eventually(lambda: _resets(mgr, 1), within=LOSS_BOUND + 1)  # checked every 1 s
        await eventually(lambda: _serving(mgr, tokens[0]), within=5)
