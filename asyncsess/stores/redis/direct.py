"""The Redis store's read bypass (``direct_reads=True``, the default).

A read runs on a connection the store keeps between calls, with the same
connection API redis-py's own client uses, but without the pool round trip
and the per-command retry and metrics wrapper around it (``execute_command``,
where OpenTelemetry and Sentry hook in: they do not see these reads).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["IDLE", "DirectReads"]

IDLE = 8  # connections kept for reads at most: the manager keeps a few reads in flight


class DirectReads:
    """Idempotent read commands on up to ``keep`` connections kept from ``client``'s pool."""

    def __init__(self, client: Redis, keep: int) -> None:
        self._pool: Any = client.connection_pool
        self._keep = keep
        self._idle: list[Any] = []

    async def read(self, *command: Any) -> Any:
        """Send ``command`` and return its reply.

        A connection found broken (the server restarted) is reconnected and the
        read sent once more; on any other failure or cancellation the
        connection is dropped, so no half-read reply is left on it.
        """
        conn = self._idle.pop() if self._idle else await self._pool.get_connection()
        try:
            packed = conn.pack_command(*command)
            try:
                await conn.send_packed_command(packed)
                return await conn.read_response()
            except RedisConnectionError:
                await conn.disconnect(nowait=True)
                await conn.send_packed_command(packed)  # reconnects first
                return await conn.read_response()
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        finally:
            if len(self._idle) < self._keep:
                self._idle.append(conn)
            else:
                await self._pool.release(conn)

    async def aclose(self) -> None:
        """Give the kept connections back to the pool."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)
