"""The near cache's channel on Redis and Redis Cluster: server-assisted client-side caching.

Per node that can hold sessions (one server; on a cluster each primary owning
a slot a session key can hash to), the channel owns two connections of its
own, made with the store client's settings (``redis.asyncio`` has no
client-side caching to build on, so nothing here touches the client's pool):

- a *listener*, in RESP2, that runs ``CLIENT ID``, then ``CLIENT TRACKING ON
  REDIRECT <its own id> BCAST PREFIX {prefix}s: PREFIX <heartbeat prefix>``,
  then ``SUBSCRIBE __redis__:invalidate``. Redis then publishes on it the name
  of every key under those prefixes that any client changes (written,
  deleted, expired, evicted), and a null for a flush;
- a *writer* that sets this process's heartbeat key on that node.

Why broadcasting mode and not the default one, where Redis remembers which
keys each client read: the default mode needs tracking on every connection
that reads (the store's pooled connections, the app's client), and costs
Redis memory per key read per client; broadcasting needs neither, and every
process can keep reading on the pool as it always did. Its cost is that each
process hears every session write of the fleet (creates and renewals too):
one short message per write, not per read. Why a RESP2 subscription and not
RESP3 push messages on one connection: redis-py's asyncio client exposes no
push-message handler to build on, while a subscribed RESP2 connection is
plain request/reply reading that every redis-py and server version does.

Heartbeats prove the whole path: the writer's ``SET`` of the node's heartbeat
key must come back as an invalidation on the listener (see
:mod:`.channel`). A closed connection, a heartbeat late, a ``MOVED`` reply
(the node is no longer a primary of that slot) or, checked every second, a
change in ``CLUSTER SLOTS`` tears the link down: the cache is dropped and the
link opened again on the current primaries. The connections are named
``asyncsess-nearcache:<prefix>`` in ``CLIENT LIST`` (see :func:`connection_name`).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

from ..exceptions import ConfigurationError
from ..stores.redis import RedisStore
from .cache import NearCache
from .channel import ChannelLost, Echo

__all__ = ["NAME", "RedisChannel", "connection_name"]

#: How the channel's connections are named in ``CLIENT LIST``, before ``:<prefix>``.
NAME = "asyncsess-nearcache"
_TOPOLOGY_EVERY = 5  # heartbeats of the first node between two ``CLUSTER SLOTS`` checks
_BEAT_LIFE_MS = "60000"  # a heartbeat key outlives its process by at most this
_TRIES = 64  # heartbeat key names tried in a row that all land in one slot: a hash-tagged prefix
Connect = Callable[[str | None, int | None], Any]  # (host, port) -> a new connection
_Slots = tuple[tuple[int, int, str, int], ...]  # (first slot, last slot, host, port), sorted


def connection_name(prefix: str) -> str:
    """The name of the channel's connections for a store's ``prefix``: ``NAME:<prefix>``,
    each space, control or non-ASCII character of the prefix as ``?``."""
    return f"{NAME}:" + "".join(c if "!" <= c <= "~" else "?" for c in prefix)


def _connector(connection_class: Any, kwargs: dict[str, Any], name: str) -> Connect:
    """New connections with the client's settings, in RESP2, reads never timing out."""
    options = {k: v for k, v in kwargs.items() if "maint" not in k and not k.startswith("orig_")}
    options.update(protocol=2, socket_timeout=None, client_name=name)

    def connect(host: str | None, port: int | None) -> Any:
        where = {} if host is None else {"host": host, "port": port}
        return connection_class(**{**options, **where})

    return connect


async def _call(conn: Any, *command: Any) -> Any:
    await conn.send_command(*command)
    return await conn.read_response()


def _host(value: Any, seed_host: str) -> str:
    host = value.decode() if isinstance(value, bytes) else str(value)
    return host if host not in ("", "?") else seed_host


def _slots(reply: Any, seed_host: str) -> _Slots:
    """``CLUSTER SLOTS`` as sorted (first, last, primary host, primary port)."""
    rows = [
        (int(first), int(last), _host(primary[0], seed_host), int(primary[1]))
        for first, last, primary, *_ in reply
    ]
    return tuple(sorted(rows))


def _every_node(reply: Any, seed_host: str) -> list[tuple[str, int]]:
    """Every node ``CLUSTER SLOTS`` names, primaries and replicas."""
    return [(_host(n[0], seed_host), int(n[1])) for row in reply for n in row[2:]]


class _Link:
    """The subscribed listeners and their writers, one of each per node."""

    def __init__(
        self,
        cache: NearCache,
        listeners: list[Any],
        writers: list[Any],
        beat_keys: list[bytes],
        sessions: bytes,
        slots: _Slots | None,
    ) -> None:
        self.cache, self.listeners, self.writers = cache, listeners, writers
        self.beat_keys, self.sessions, self.slots = beat_keys, sessions, slots
        self.nodes = len(listeners)
        self._beats = 0

    async def watch(self, echo: Echo) -> None:
        async with anyio.create_task_group() as tg:
            for node in range(self.nodes):
                tg.start_soon(self._read, node, echo)

    async def _read(self, node: int, echo: Echo) -> None:
        conn, beat, cache = self.listeners[node], self.beat_keys[node], self.cache
        sessions = self.sessions
        start = len(sessions) + 1  # after "{prefix}s:{"
        while True:
            message = await conn.read_response()
            if not isinstance(message, list) or message[0] != b"message":
                continue  # the subscription's confirmation
            keys = message[2]
            if keys is None:  # FLUSHALL, FLUSHDB
                cache.invalidations += 1
                cache.clear()
                continue
            for name in keys:
                if name.startswith(sessions):
                    cache.received(name[start:-1].decode())
                elif name == beat:
                    echo(node)

    async def ping(self, node: int) -> None:
        conn = self.writers[node]
        try:
            await _call(conn, "SET", self.beat_keys[node], b"1", "PX", _BEAT_LIFE_MS)
            if node == 0 and self.slots is not None:
                self._beats += 1
                if self._beats % _TOPOLOGY_EVERY == 0:
                    now = _slots(await _call(conn, "CLUSTER", "SLOTS"), self.slots[0][2])
                    if now != self.slots:
                        raise ChannelLost("the cluster's slots moved")
        except ResponseError as exc:  # MOVED: the node is no longer that slot's primary
            raise ChannelLost(f"the heartbeat was refused: {exc}") from exc


class RedisChannel:
    """Opens links to the server, or to every primary of a cluster (see the module docstring)."""

    def __init__(self, store: RedisStore) -> None:
        client = store.client  # the store's, for its settings only
        self._client = client
        self._timeout = store.timeout
        self._sessions = f"{store.prefix}s:".encode()
        self._beats = f"{store.prefix}~nc:{secrets.token_hex(6)}:"  # this process's own
        self._name = connection_name(store.prefix)
        self._connect: Connect | None = None  # a cluster's nodes, with the client's settings
        self._seeds: list[tuple[str, int]] = []  # the nodes last heard of, replicas included
        self.what = f"Redis{' Cluster' if store.cluster else ''} (prefix {store.prefix!r})"

    async def _nodes(
        self, opened: list[Any]
    ) -> tuple[list[tuple[Connect, str, int]], list[bytes], _Slots | None]:
        """Where to listen: (connect, host, port) per node, its heartbeat key, the slot map."""
        client = self._client
        if isinstance(client, Redis):
            pool = client.connection_pool
            connect = _connector(pool.connection_class, pool.connection_kwargs, self._name)
            return [(connect, "", 0)], [f"{self._beats}0".encode()], None
        if self._connect is None:  # the client's settings, once
            cluster = await client.initialize()
            known = cluster.get_nodes()
            seed = known[0]
            self._connect = _connector(seed.connection_class, seed.connection_kwargs, self._name)
            self._seeds = [(n.host, int(n.port)) for n in known]
        connect = self._connect
        slots: _Slots = ()
        for host, port in self._seeds:  # the first that answers (one may be down)
            probe = connect(host, port)
            opened.append(probe)
            try:
                await probe.connect()
                reply = await _call(probe, "CLUSTER", "SLOTS")
            except (OSError, RedisError):
                continue
            finally:
                await probe.disconnect()
            slots = _slots(reply, host)
            self._seeds = list(dict.fromkeys([*_every_node(reply, host), *self._seeds]))
            break
        if not slots:
            raise ChannelLost("no node of the cluster answered CLUSTER SLOTS")
        primaries = list(dict.fromkeys((host, port) for _, _, host, port in slots))
        keys: dict[tuple[str, int], bytes] = {}
        last_slot, same = -1, 0
        for i in range(16384 * 8):
            name = f"{self._beats}{i}".encode()
            slot = key_slot(name)
            owner = next(((h, p) for first, last, h, p in slots if first <= slot <= last), None)
            if owner is not None:
                keys.setdefault(owner, name)
            same = same + 1 if slot == last_slot else 0
            last_slot = slot
            if len(keys) == len(primaries) or same >= _TRIES:
                break
        nodes = [(connect, host, port) for host, port in primaries if (host, port) in keys]
        return nodes, [keys[(host, port)] for _, host, port in nodes], slots

    async def prepare(self) -> None:
        """Nothing to prepare: each link checks what it needs as it opens."""

    @asynccontextmanager
    async def open(self, cache: NearCache) -> AsyncIterator[_Link]:
        """Connect and subscribe on every node; close every connection on the way out."""
        opened: list[Any] = []
        try:
            with anyio.fail_after(self._timeout):
                nodes, beat_keys, slots = await self._nodes(opened)
                listeners, writers = [], []
                for connect, host, port in nodes:
                    listener = connect(host or None, port or None)
                    opened.append(listener)
                    await listener.connect()
                    me = await _call(listener, "CLIENT", "ID")
                    try:
                        await _call(
                            listener, "CLIENT", "TRACKING", "ON", "REDIRECT", me, "BCAST",
                            "PREFIX", self._sessions, "PREFIX", self._beats,
                        )  # fmt: skip
                    except ResponseError as exc:
                        raise ConfigurationError(
                            "the near cache needs CLIENT TRACKING (Redis 6 or later, and an ACL "
                            f"user allowed CLIENT): {exc}; or pass near_cache=0"
                        ) from exc
                    await _call(listener, "SUBSCRIBE", "__redis__:invalidate")
                    listeners.append(listener)
                    writer = connect(host or None, port or None)
                    opened.append(writer)
                    await writer.connect()
                    writers.append(writer)
            cache.subscribed()
            yield _Link(cache, listeners, writers, beat_keys, self._sessions, slots)
        finally:
            with anyio.CancelScope(shield=True):
                for conn in opened:
                    await conn.disconnect(nowait=True)
