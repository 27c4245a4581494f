"""Private ``redis-server`` processes on spare loopback ports: single servers and a 3-master
Redis Cluster. Used by the test fixtures (``tests/backends/redis.py``) and the benchmarks;
needs ``redis-server`` (and ``redis-cli`` for a cluster) on ``PATH``, and no pytest."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis, RedisError

HOST = "127.0.0.1"


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


def cluster_available() -> bool:
    """Whether ``redis-server`` and ``redis-cli`` are on ``PATH``."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


@contextmanager
def redis_cluster(root: Path, masters: int = 3) -> Iterator[str]:
    """Run a Redis Cluster of ``masters`` primaries (no replicas) under ``root`` until the
    block ends; yield its ``redis+cluster://`` URL (any node's address)."""
    nodes: list[RedisProcess] = []
    try:
        for _ in range(masters):
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
