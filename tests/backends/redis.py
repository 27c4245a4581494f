"""Redis for the tests: the machine's server at 127.0.0.1:6379, and a 3-master Redis
Cluster (plus private single servers for fault tests) started from ``redis-server``
on spare loopback ports."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis, RedisError
from redis.cluster import RedisCluster

from . import StoreSpec, unavailable

HOST, PORT = "127.0.0.1", 6379
URL = f"redis://{HOST}:{PORT}/0"
HOW = (
    "start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 "
    "--save '' --appendonly no"
)
SERVER_HOW = "install redis-server (e.g. apt-get install redis-server) and put it on PATH"


def unique_prefix() -> str:
    """A key prefix no other test run uses."""
    return f"asyncsess-test:{uuid.uuid4().hex[:12]}:"


def spare_port(cluster: bool = False) -> int:
    """A loopback port that is free now (and, for a cluster node, so is its bus port +10000)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port: int = probe.getsockname()[1]
        if port > 55_000 and cluster:
            continue
        if not cluster or _free(port + 10_000):
            return port
    raise RuntimeError("no spare loopback port found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``check()`` until it is true (no fixed sleeps for readiness)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


class RedisProcess:
    """A private ``redis-server`` on a fixed loopback port, which tests may kill and restart."""

    def __init__(self, directory: Path, port: int, *options: str) -> None:
        self.directory, self.port, self.options = directory, port, options
        self.url = f"redis://{HOST}:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                 "--appendonly", "no", "--dir", str(self.directory), *self.options],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self.answers, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        """Whether the server answers PING now."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()}")
        try:
            with Redis(host=HOST, port=self.port, socket_timeout=1) as client:
                return bool(client.ping())
        except RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no save) and reap it."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


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
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        unavailable("redis-server and redis-cli (for a Redis Cluster)", SERVER_HOW)
    root = tmp_path_factory.mktemp("redis-cluster")
    nodes: list[RedisProcess] = []
    try:
        for _ in range(3):
            port = spare_port(cluster=True)
            node = RedisProcess(root / str(port), port, "--cluster-enabled", "yes",
                                "--cluster-config-file", "nodes.conf")  # fmt: skip
            node.start()
            nodes.append(node)
        addresses = [f"{HOST}:{node.port}" for node in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

        def ready() -> bool:
            for node in nodes:
                with Redis(host=HOST, port=node.port, socket_timeout=1) as client:
                    info = client.execute_command("CLUSTER", "INFO")
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    if "cluster_state:ok" not in text:
                        return False
            return True

        wait_until(ready, "the Redis Cluster to report cluster_state:ok", timeout=30)
        yield f"redis+cluster://{HOST}:{nodes[0].port}"
    finally:
        for node in nodes:
            node.kill()


@pytest.fixture
def redis_cluster_store_spec(redis_cluster_url: str) -> Iterator[StoreSpec]:
    """A Redis Cluster store under a prefix of its own, wiped after the test."""
    prefix = unique_prefix()
    yield StoreSpec(redis_cluster_url, {"prefix": prefix})
    plain = redis_cluster_url.replace("redis+cluster://", "redis://")
    with RedisCluster.from_url(plain, socket_timeout=5) as client:
        _wipe(client, prefix)
