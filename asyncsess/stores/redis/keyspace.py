"""Naming and walking a :class:`~asyncsess.stores.redis.RedisStore`'s keys, and the work over all.

The key names (see :mod:`asyncsess.stores.redis.store` for the layout), ``SCAN``
of every primary, and the store methods that walk the whole keyspace:
``sweep`` (tidying the user indexes), ``count`` and ``wipe``. A mixin of the
store: it uses the store's client, bounded caller and scripts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from redis.commands.core import AsyncScript

from . import scripts
from .client import Caller
from .scripts import Runner

__all__ = ["Keyspace"]

_SCAN = 1000


class Keyspace:
    """Key names, ``SCAN``, and the store's whole-keyspace methods (sweep, count, wipe)."""

    prefix: str
    cluster: bool
    _any: Any
    _run: Caller
    _scripts: Runner
    _sweep: AsyncScript

    async def _primaries(self) -> list[Any]:
        return list(self._any.get_primaries()) if self.cluster else [None]

    async def _scan(self, pattern: str) -> AsyncGenerator[list[bytes]]:
        """Yield the keys matching ``pattern`` in batches (on a cluster, from every primary)."""
        scan = self._any.scan
        for node in await self._run(self._primaries):
            cursor = None
            while cursor != 0:
                if node is None:
                    cursor, keys = await self._run(scan, cursor or 0, pattern, _SCAN)
                else:
                    found = await self._run(scan, cursor or 0, pattern, _SCAN, target_nodes=node)
                    cursors, keys = found
                    cursor = cursors[node.name]
                if keys:
                    yield keys

    def _pipeline(self) -> Any:
        return self._any.pipeline(transaction=False)

    def _skey(self, key: str) -> str:
        return f"{self.prefix}s:{{{key}}}"

    def _ukey(self, user_ref: str) -> str:
        return f"{self.prefix}u:{{{user_ref}}}"

    def _pattern(self, tail: str) -> str:
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + tail

    async def _sweep_batch(self, ukeys: list[bytes], now: float, budget: int) -> int:
        deleted = 0
        while ukeys and deleted < budget:  # each round takes its entries out of the due range
            page = budget - deleted
            pipe = self._pipeline()
            for ukey in ukeys:
                pipe.zrangebyscore(ukey, "-inf", now, start=0, num=page)
            due: list[list[bytes]] = await self._run(pipe.execute)
            pending = [(u, members) for u, members in zip(ukeys, due, strict=True) if members]
            ukeys = [u for u, _ in pending]
            todo = [(u, m.decode()) for u, members in pending for m in members][:page]
            calls = [(self._skey(member), [repr(now)]) for _, member in todo]
            outcomes = await self._run(self._scripts.each, self._sweep, calls) if calls else []
            pipe = self._pipeline()
            for (ukey, member), outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, bytes):  # renewed since it was indexed: re-score
                    pipe.zadd(ukey, {member: float(outcome)}, xx=True)
                else:  # gone (0) or deleted now (1)
                    pipe.zrem(ukey, member)
                    deleted += outcome
            await self._run(pipe.execute)
        return deleted

    async def sweep(self, now: float, *, limit: int) -> int:
        """Tidy the user indexes; delete records expired at ``now`` that Redis still holds."""
        deleted = 0
        async with aclosing(self._scan(self._pattern("u:*"))) as batches:
            async for ukeys in batches:
                deleted += await self._sweep_batch(ukeys, now, limit - deleted)
                if deleted >= limit:
                    break
        return deleted

    async def count(self, now: float) -> tuple[int, int]:
        """Scan the session keys and read their expiry (pipelined per scan batch)."""
        live = expired = 0
        async with aclosing(self._scan(self._pattern("s:*"))) as batches:
            async for keys in batches:
                pipe = self._pipeline()
                for key in keys:
                    pipe.get(key)
                for row in await self._run(pipe.execute):
                    if row is not None:
                        expires_at = scripts.PACKED.unpack_from(row)[1]
                        live += expires_at > now
                        expired += expires_at <= now
        return live, expired

    async def wipe(self) -> int:
        """Delete every key under the prefix (SCAN, never KEYS); return the records deleted."""
        records = 0
        session = self._skey("")[:-1].encode()
        async with aclosing(self._scan(self._pattern("*"))) as batches:
            async for keys in batches:
                if ours := [k for k in keys if k.startswith(session)]:
                    records += await self._run(self._any.unlink, *ours)
                if others := [k for k in keys if not k.startswith(session)]:
                    await self._run(self._any.unlink, *others)
        return records
