"""Servers the soak starts and breaks: a Redis Cluster with a replica per primary and a
private PostgreSQL (``initdb``/``pg_ctl``), both on spare loopback ports. Blocking: call
them from a worker thread when an event loop is running."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from redis import Redis, RedisError

from tests.redis_cluster import HOST, RedisProcess, spare_port, wait_until

__all__ = ["PostgresServer", "ReplicatedCluster"]


def _state(port: int) -> tuple[str, str, str]:
    """(cluster_state, role, master_link_status or "") of the node on ``port``."""
    with Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1) as client:
        cluster = client.execute_command("CLUSTER", "INFO")
        replication = client.info("replication")
    if isinstance(cluster, bytes | str):
        text = cluster.decode() if isinstance(cluster, bytes) else cluster
        cluster = dict(line.split(":", 1) for line in text.split() if ":" in line)
    state = str(cluster.get("cluster_state", ""))
    return state, str(replication["role"]), str(replication.get("master_link_status", ""))


class ReplicatedCluster:
    """A Redis Cluster of ``primaries`` primaries with one replica each; a primary killed
    with SIGKILL is replaced by its replica (``cluster-node-timeout`` ``node_timeout_ms``)."""

    def __init__(self, root: Path, primaries: int = 3, node_timeout_ms: int = 2000) -> None:
        self.root, self.primaries, self.node_timeout_ms = root, primaries, node_timeout_ms
        self.nodes: list[RedisProcess] = []

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of the first node (the client discovers the rest)."""
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    def start(self) -> None:
        """Start every node, create the cluster and wait until each replica is in sync."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for _ in range(2 * self.primaries):
            port = spare_port(cluster=True)
            node = RedisProcess(
                self.root / str(port), port, "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
            )  # fmt: skip
            node.start()
            self.nodes.append(node)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{HOST}:{n.port}" for n in self.nodes),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until(self.healthy, "the Redis Cluster to be ok with every replica in sync", 60)

    def healthy(self) -> bool:
        """Cluster state ok on every running node and every primary has a linked replica."""
        try:
            states = [_state(n.port) for n in self.nodes if n.proc is not None]
        except RedisError:
            return False
        replicas = [link for _, role, link in states if role == "slave"]
        return (
            all(state == "ok" for state, _, _ in states)
            and replicas.count("up") == len(replicas) == len(states) - self.primaries
        )

    def wait_healthy(self) -> None:
        """Wait until every node is back and every replica in sync."""
        wait_until(self.healthy, "the Redis Cluster to be healthy", 60)

    def version(self) -> str:
        """The servers' ``redis_version``."""
        with Redis(host=HOST, port=self.nodes[0].port, socket_timeout=1) as client:
            return str(client.info("server")["redis_version"])

    def primary(self, index: int = 0) -> RedisProcess:
        """The ``index``-th running node that is a primary now."""
        found = [n for n in self.nodes if n.proc is not None and _state(n.port)[1] == "master"]
        return found[index % len(found)]

    def replicas(self) -> list[RedisProcess]:
        """The running nodes that are replicas now."""
        return [n for n in self.nodes if n.proc is not None and _state(n.port)[1] == "slave"]

    def kill(self, node: RedisProcess) -> None:
        """SIGKILL ``node``: no shutdown, no save, no goodbye to its replica."""
        node.kill()

    def wait_failover(self, timeout: float = 30.0) -> None:
        """Wait until a replica has replaced each killed primary and the cluster is ok."""

        def ok() -> bool:
            try:
                states = [_state(n.port) for n in self.nodes if n.proc is not None]
            except RedisError:
                return False
            masters = sum(role == "master" for _, role, _ in states)
            return masters == self.primaries and all(state == "ok" for state, _, _ in states)

        wait_until(ok, "the Redis Cluster to fail over", timeout)

    def rejoin(self, node: RedisProcess) -> None:
        """Restart a killed node; it rejoins as a replica of the primary that replaced it."""
        node.start()
        wait_until(self.healthy, "the restarted node to rejoin as an in-sync replica", 60)

    def stop(self) -> None:
        """SIGKILL every node."""
        for node in self.nodes:
            node.kill()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} (PostgreSQL server binaries) not found")
    return path


class PostgresServer:
    """A private PostgreSQL cluster: its own data directory and port, trust auth on loopback.

    Run as the ``postgres`` OS user when started as root (``initdb`` refuses root).
    """

    def __init__(self) -> None:
        # a directory of its own, not under a root-only one: the server runs as postgres
        self.root = Path(tempfile.mkdtemp(prefix="asyncsess-soak-pg-"))
        self.data = self.root / "data"
        self.port = spare_port()
        self.url = f"postgresql+asyncpg://postgres@{HOST}:{self.port}/postgres"
        self._user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str, timeout: float = 60.0) -> None:
        done = subprocess.run([*self._user, *command], capture_output=True, timeout=timeout)
        if done.returncode:
            said = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise RuntimeError(f"{command[0]} {command[1]} failed ({done.returncode}): {said}")

    def start(self) -> None:
        """``initdb`` (first time) and ``pg_ctl start``; returns once it accepts connections."""
        if self._user:
            shutil.chown(self.root, "postgres")
        if not self.data.exists():
            self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._ctl("start", "-w")

    def _ctl(self, action: str, *flags: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c fsync=on"
        self._run(
            _pg_bin("pg_ctl"), action, "-D", str(self.data), "-l", str(self.root / "pg.log"),
            "-o", options, *flags,
        )  # fmt: skip

    def version(self) -> str:
        """The server's version string (``postgres --version``)."""
        out = subprocess.run([_pg_bin("postgres"), "--version"], capture_output=True, text=True)
        return out.stdout.split()[2]  # "postgres (PostgreSQL) 15.20 (Debian ...)"

    def restart(self) -> None:
        """Stop at once (``-m immediate``: a crash, recovered from the WAL) and start again."""
        self._ctl("restart", "-m", "immediate", "-w")

    def refuse_connections(self, refuse: bool = True) -> None:
        """Restart as a standby with hot standby off: the server runs, recovering, and
        refuses every connection with SQLSTATE 57P03 ("not accepting connections"), as
        while it starts up. ``refuse=False`` restarts it as the primary it was."""
        signal = self.data / "standby.signal"
        self._ctl("stop", "-m", "fast", "-w")
        if refuse:
            signal.touch()
            if self._user:
                shutil.chown(signal, "postgres")
            self._ctl("start", "-o", "-c hot_standby=off", "-W")  # never accepts: no wait
            # listening, and refusing (not merely not there yet)
            wait_until(self._rejecting, "PostgreSQL to refuse connections", timeout=30)
        else:
            signal.unlink()
            self._ctl("start", "-w")

    def _rejecting(self) -> bool:
        # pg_isready: 0 accepting, 1 rejecting connections, 2 no response
        ready = [_pg_bin("pg_isready"), "-q", "-h", HOST, "-p", str(self.port)]
        return subprocess.run(ready, capture_output=True, timeout=10).returncode == 1

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._ctl("stop", "-m", "fast", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
