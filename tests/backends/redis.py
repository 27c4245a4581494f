"""Redis for the tests: the machine's server at 127.0.0.1:6379, and a 3-master Redis
Cluster (plus private single servers for fault tests) started from ``redis-server``
on spare loopback ports (by :mod:`tests.redis_cluster`)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis, RedisError
from redis.cluster import RedisCluster

from tests.redis_cluster import HOST, cluster_available, redis_cluster, spare_port
from tests.redis_cluster import RedisProcess as RedisProcess

from . import StoreSpec, unavailable

PORT = 6379
URL = f"redis://{HOST}:{PORT}/0"
HOW = (
    "start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 "
    "--save '' --appendonly no"
)
SERVER_HOW = "install redis-server (e.g. apt-get install redis-server) and put it on PATH"


def unique_prefix() -> str:
    """A key prefix no other test run uses."""
    return f"asyncsess-test:{uuid.uuid4().hex[:12]}:"


def _wipe(client: Redis | RedisCluster, prefix: str) -> None:
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    for key in list(client.scan_iter(match=pattern, count=1000)):
        client.delete(key)


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The machine's Redis, checked with a PING once per session."""
    try:
        with Redis(host=HOST, port=PORT, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    except RedisError:
        unavailable(f"Redis at {HOST}:{PORT}", HOW)
    return URL


@pytest.fixture
def redis_store_spec(redis_server_url: str) -> Iterator[StoreSpec]:
    """A Redis store under a prefix of its own, wiped after the test."""
    prefix = unique_prefix()
    yield StoreSpec(redis_server_url, {"prefix": prefix})
    with Redis.from_url(redis_server_url, socket_timeout=5) as client:
        _wipe(client, prefix)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private, started ``redis-server`` that the test may kill, pause and restart."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server", SERVER_HOW)
    server = RedisProcess(tmp_path / "redis", spare_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster (no replicas) on spare ports, for the whole session."""
    if not cluster_available():
        unavailable("redis-server and redis-cli (for a Redis Cluster)", SERVER_HOW)
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture
def redis_cluster_store_spec(redis_cluster_url: str) -> Iterator[StoreSpec]:
    """A Redis Cluster store under a prefix of its own, wiped after the test."""
    prefix = unique_prefix()
    yield StoreSpec(redis_cluster_url, {"prefix": prefix})
    plain = redis_cluster_url.replace("redis+cluster://", "redis://")
    with RedisCluster.from_url(plain, socket_timeout=5) as client:
        _wipe(client, prefix)
