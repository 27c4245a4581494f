"""Reading every record of a :class:`~asyncsess.stores.redis.RedisStore` (``scan``).

``SCAN`` over the session keys (on a cluster, every primary), then one
pipelined ``GET`` per ``batch`` keys. ``SCAN`` may return a key twice, and a
record written or expiring meanwhile may or may not be seen.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING

from ..base import Record
from .scripts import unpack

if TYPE_CHECKING:
    from .store import RedisStore

__all__ = ["scan"]


async def scan(store: RedisStore, batch: int) -> AsyncGenerator[list[Record]]:
    """Yield the records of ``store``, at most ``batch`` per list."""
    start = len(store.prefix.encode()) + len(b"s:{")  # a session key is {prefix}s:{<key>}
    async with aclosing(store._scan(store._pattern("s:*"))) as found:
        async for skeys in found:
            for first in range(0, len(skeys), batch):
                chunk = skeys[first : first + batch]
                pipe = store._pipeline()
                for skey in chunk:
                    pipe.get(skey)
                rows = await store._run(pipe.execute)
                records = [
                    unpack(k[start:-1].decode(), row) for k, row in zip(chunk, rows, strict=True)
                ]
                if present := [record for record in records if record is not None]:
                    yield present
