"""Redis and Redis Cluster store (``redis.asyncio``, redis-py 5.3+; Redis 6.2+ or Valkey).

Keys, under ``prefix`` (default ``"asyncsess:"``; ``wipe`` deletes every key under it)::

    {prefix}s:{<key>}        string: struct ">dddiH" (created_at, expires_at, absolute_at,
                             version, len(user_ref)), user_ref, payload; PXAT expires_at
    {prefix}u:{<user_ref>}   sorted set of the user's keys scored by expires_at as last
                             written (never above the record's); expires at its members'
                             latest absolute_at, so it outlives every one of them

Redis drops a session at ``expires_at`` by itself; ``sweep`` tidies the user
indexes and deletes only records that the caller's clock says are expired but
Redis's has not reached (so it normally returns 0). ``get`` is one ``GET``
(``get_many`` one ``MGET``), as cheap as a bare lookup; only a record read as
due for renewal costs one more command, an ``EVALSHA`` that re-checks it and
moves its expiry (``SETRANGE`` on the expiry field, ``PEXPIREAT``). Every call is
bounded by ``timeout`` (waiting for a free pooled connection included: redis-py
raises rather than waits when its pool is exhausted, so the store never has
more commands in flight than the pool's ``max_connections``).

Cluster semantics. A session key is hash-tagged by its key and an index by its
user, so sessions spread over the cluster and each single-session operation
(``get`` and its renewal, ``replace``'s compare-and-set) is atomic. Operations
touching a session *and* its index run in steps, not one script: ``insert``
and ``replace`` write the index entry first, then the record (a record never
lives without one), and a record moved to another user reference loses its old
entry last; ``delete`` deletes the record, then the entry;
``delete_user`` reads the index, then deletes each record (checking its owner)
and the entries, so a session inserted meanwhile may survive it; ``list_user``
and ``sweep`` are not snapshots. A failed step leaves at most a stale entry,
which reads skip and ``sweep`` removes. With a hash tag in the prefix
(``prefix="{sessions}:"``) every key lands in one slot and the single-node
scripts, atomic but reaching keys they derive from the prefix, are used.
``wipe`` and ``sweep`` scan every primary. ``delete_user`` works through the
index 1,000 records at a time (one script each on a single node), so revoking
100,000 sessions never holds Redis in one long call. A session without a user
(``user_ref`` ``""``) has no index entry: Redis expires it, and ``sweep`` never
sees it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from datetime import timedelta
from typing import Any, ClassVar, Final, Self, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ...exceptions import ConfigurationError
from .._timeout import check_timeout
from .._url import split_query
from ..base import Record, RecordExists, Renewal, Store
from . import scripts
from .client import Caller, client_from_url
from .keyspace import Keyspace
from .scan import scan as _scan_records
from .scripts import Runner, pack, unpack
from .scripts import ms as _ms

__all__ = ["RedisStore"]

_CHUNK = 1000  # records one script deletes at most: Redis runs nothing else meanwhile
_DURABILITY: Final = ("wait_replicas", "wait_timeout")


def _hash_tagged(prefix: str) -> bool:
    start = prefix.find("{")
    return start >= 0 and prefix.find("}", start) > start + 1


class RedisStore(Keyspace, Store):
    """Sessions in Redis or Redis Cluster, expired natively (see the module docstring).

    Pass an app-owned ``redis.asyncio.Redis`` or ``RedisCluster`` (created with
    ``decode_responses=False``; never closed here), or use :meth:`from_url`.
    Every call is bounded by ``timeout`` seconds and raises
    :class:`~asyncsess.StoreUnavailable` when Redis does not answer.

    Durability: Redis replicates asynchronously, so a failover can lose writes
    it acknowledged. With ``wait_replicas=n`` every write (insert, replace,
    delete, delete_user, renewal, sweep) is followed by ``WAIT n`` on the
    connection that made it (on a cluster, of the node that took it), and
    fails with :class:`~asyncsess.StoreUnavailable` unless ``n`` replicas had
    it within ``wait_timeout`` seconds: a ``create`` that returns is on ``n``
    replicas. The cost is a replica round trip per write, and writes to a
    primary left without replicas fail until one is back.
    """

    native_expiry: ClassVar[bool] = True

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "asyncsess:",
        timeout: float | timedelta = 5.0,
        wait_replicas: int = 0,
        wait_timeout: float | timedelta = 1.0,
    ) -> None:
        seconds = check_timeout(timeout, "RedisStore")
        wait_timeout = check_timeout(wait_timeout, "RedisStore", "wait_timeout")
        if isinstance(wait_replicas, str) and wait_replicas.isdigit():  # from a URL query
            wait_replicas = int(wait_replicas)
        if type(wait_replicas) is not int or wait_replicas < 0:
            raise ConfigurationError(
                f"RedisStore wait_replicas must be a whole number >= 0, not {wait_replicas!r}"
            )
        if not prefix:
            raise ConfigurationError("RedisStore prefix must be a non-empty str, e.g. 'asyncsess:'")
        if client.get_encoder().decode_responses:
            raise ConfigurationError("pass RedisStore a client created with decode_responses=False")
        self._client, self._owned, self.prefix = client, False, prefix
        self._any: Any = client  # for calls whose redis-py types are too loose to use
        #: Whether the client is a Redis Cluster client.
        self.cluster = isinstance(client, RedisCluster)
        # every call bounded, never more in flight than the pool has connections
        self._run = Caller(client, timeout=seconds, name="Redis")
        self._scripts = Runner(client, wait_replicas=wait_replicas, wait_timeout=wait_timeout)
        #: Seconds every call may take (waiting for a pooled connection included).
        self.timeout: float = seconds
        self._one_node = not self.cluster or _hash_tagged(prefix)
        self._renew = client.register_script(scripts.RENEW)
        self._put = client.register_script(scripts.PUT)
        self._index = client.register_script(scripts.INDEX + "index_add(KEYS[1])")
        self._delete = client.register_script(scripts.DELETE)
        self._delete_user = client.register_script(scripts.DELETE_USER)
        self._sweep = client.register_script(scripts.SWEEP)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a store and its own client from ``redis[s][+cluster]://...``.

        ``prefix``, ``timeout``, ``wait_replicas`` and ``wait_timeout`` come from
        ``options`` or the URL query (``?wait_replicas=1``); other
        options go to redis-py's ``from_url``. Reads get no socket timeout of their
        own (redis-py would wrap every read in ``asyncio.wait_for``): each call is
        bounded by ``timeout`` as a whole; connecting is bounded by it too.
        """
        rest, ours = split_query(url, ("prefix", "timeout", *_DURABILITY))
        prefix = options.pop("prefix", ours.get("prefix", "asyncsess:"))
        timeout = check_timeout(options.pop("timeout", ours.get("timeout", 5.0)), "RedisStore")
        found = {k: options.pop(k, ours.get(k)) for k in _DURABILITY}
        durability = {k: v for k, v in found.items() if v is not None}
        client = client_from_url(rest, timeout=timeout, **options)
        store = cls(client, prefix=prefix, timeout=timeout, **durability)
        store._owned = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, cluster={self.cluster})"

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client the store runs on (the app's, or its own from :meth:`from_url`)."""
        return self._client

    # -- the store protocol ---------------------------------------------

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        """Return the record of ``key``: one ``GET``, then ``EVALSHA`` only if renewal is due."""
        skey = self._skey(key)
        row = await self._run.read(self._any.get, skey)
        record = unpack(key, row)
        if renew is not None and record is not None and renew.apply(record) is not None:
            return (await self._renewed([record], renew))[0]
        return record

    async def get_many(
        self, keys: Sequence[str], *, renew: Renewal | None = None
    ) -> list[Record | None]:
        """Return the records of ``keys`` in one round trip (one per node on a cluster),
        then renew those due in one more."""
        if not keys:
            return []
        skeys = [self._skey(key) for key in keys]
        if self._one_node:
            rows: list[Any] = await self._run.read(self._client.mget, skeys)
        else:
            pipe = self._pipeline()
            for skey in skeys:
                pipe.get(skey)
            rows = await self._run(pipe.execute)
        records = [unpack(key, row) for key, row in zip(keys, rows, strict=True)]
        if renew is None:
            return records
        due = [i for i, r in enumerate(records) if r is not None and renew.apply(r) is not None]
        if due:
            renewed = await self._renewed([cast(Record, records[i]) for i in due], renew)
            for i, record in zip(due, renewed, strict=True):
                records[i] = record
        return records

    async def _renewed(self, due: Sequence[Record], renew: Renewal) -> list[Record | None]:
        """Renew records read as due; each is re-checked and returned as it now is."""
        args = [repr(renew.now), repr(renew.threshold), repr(renew.until), _ms(renew.until)]
        skeys = [self._skey(r.key) for r in due]
        if self._one_node:
            rows = await self._run(self._scripts.one, self._renew, skeys, args)
        else:
            found = await self._run(self._scripts.each, self._renew, [(k, args) for k in skeys])
            rows = [row[0] for row in found]
        return [unpack(r.key, row) for r, row in zip(due, rows, strict=True)]

    async def _write(self, record: Record, expected: str) -> bool:
        """Insert (``expected`` ``""``) or compare-and-set; ``False`` if not at ``expected``.

        Raises :class:`RecordExists` when inserting over an existing record.
        """
        ukey = self._ukey(record.user_ref)
        args: list[Any] = [
            *(record.key, repr(record.expires_at)),  # the index entry
            _ms(max(record.absolute_at, record.expires_at)),  # and its life
            *(expected, pack(record), _ms(record.expires_at)),
            self._ukey("")[:-1] if self._one_node else "",  # where the old entry is
        ]
        skey = self._skey(record.key)
        if self._one_node:
            keys = [skey, ukey] if record.user_ref else [skey]
            was = await self._scripts.one(self._put, keys, args)
        else:
            if record.user_ref:  # index first: never a record its user cannot find
                await self._scripts.one(self._index, [ukey], args)
            was = await self._scripts.one(self._put, [skey], args)
        if was == 0:
            raise RecordExists(f"a session record with key {record.key[:8]}… exists already")
        if was is None:
            return False
        if self._one_node:
            return True
        if was and was.decode() != record.user_ref:  # moved: then the old entry goes
            await self._client.zrem(self._ukey(was.decode()), record.key)
        return True

    async def insert(self, record: Record) -> None:
        """Store a new record and add it to its user's index (atomic on one node);
        :class:`~asyncsess.stores.base.RecordExists` if its key is taken."""
        await self._run(self._write, record, "")

    async def replace(self, record: Record, *, expected_version: int) -> bool:
        """Compare-and-set on the version, moving the index entry if the owner changes:
        one script (after the new index step, before the old one's, on a cluster)."""
        return await self._run(self._write, record, str(expected_version))

    async def claim_sweep(self, seconds: float) -> bool:
        """Take the turn of the fleet's processes to sweep for ``seconds`` (``SET NX PX``);
        ``False`` while another holds it. An optional capability the manager's sweeper uses."""
        ms = max(1, math.ceil(seconds * 1000))
        return bool(await self._run(self._any.set, f"{self.prefix}sweep", b"1", nx=True, px=ms))

    async def _delete_one(self, key: str, expected: str) -> bool:
        index = self._ukey("")[:-1] if self._one_node else ""
        owner = await self._scripts.one(self._delete, [self._skey(key)], ["", key, index, expected])
        if owner and not self._one_node:
            await self._client.zrem(self._ukey(owner.decode()), key)
        return owner is not None

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Delete one record (if at ``expected_version``, when given) and its index entry."""
        expected = "" if expected_version is None else str(expected_version)
        return await self._run(self._delete_one, key, expected)

    async def _delete_chunk(self, user_ref: str, keep: str | None) -> tuple[int, int]:
        """Delete the records of the index's first ``_CHUNK`` members; (deleted, read)."""
        ukey = self._ukey(user_ref)
        if self._one_node:
            args = [self._skey("")[:-1], user_ref, keep or "", str(_CHUNK)]
            deleted, read = await self._scripts.one(self._delete_user, [ukey], args)
            return int(deleted), int(read)
        members = [m.decode() for m in await self._any.zrange(ukey, 0, _CHUNK - 1)]
        doomed = [m for m in members if m != keep]
        if not doomed:
            return 0, len(members)
        calls = [(self._skey(member), [user_ref, member, "", ""]) for member in doomed]
        owners = await self._scripts.each(self._delete, calls)
        await self._client.zrem(ukey, *doomed)
        return sum(owner is not None for owner in owners), len(members)

    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        """Delete the user's records but ``keep``, at most ``_CHUNK`` (1,000) per script,
        so that Redis serves other clients in between."""
        total = 0
        while True:
            deleted, read = await self._run(self._delete_chunk, user_ref, keep)
            total += deleted
            if read < _CHUNK:
                return total

    async def _list(self, user_ref: str) -> list[Record]:
        members = [m.decode() for m in await self._any.zrange(self._ukey(user_ref), 0, -1)]
        pipe = self._pipeline()
        for member in members:
            pipe.get(self._skey(member))
        rows = await pipe.execute() if members else []
        records = [unpack(m, row) for m, row in zip(members, rows, strict=True)]
        return [r for r in records if r is not None and r.user_ref == user_ref]

    async def list_user(self, user_ref: str) -> list[Record]:
        """Return the user's records (index read, then the records)."""
        return await self._run(self._list, user_ref)

    def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        """Yield every record: ``SCAN`` (every primary), one pipelined ``GET`` per ``batch``."""
        return _scan_records(self, batch)

    async def aclose(self) -> None:
        """Close the client if :meth:`from_url` created it."""
        if self._owned:
            await self._client.aclose()
