"""The near cache: validate from process memory, with every change heard from the store.

``SessionManager(..., near_cache=N, near_cache_ttl=5)`` keeps up to ``N`` live
sessions in process memory (:mod:`.cache`) and answers a validate from there
while a channel from the store (:mod:`.channel`) proves, by heartbeats, that
it would have heard of any change: Redis and Redis Cluster by server-assisted
client-side caching (:mod:`.redis`), PostgreSQL by a trigger's ``NOTIFY``
(:mod:`.postgres`). The guarantee: a change acknowledged to any process is
seen by every other process's next validate as soon as its invalidation
arrives (milliseconds on one network), and in any case no cached session is
served more than ``near_cache_ttl`` after it was read, nor more than
:data:`~.channel.SILENCE` seconds after the channel last proved healthy; a
lost channel drops the whole cache at once. This manager's own writes are
forgotten before they return.

This package imports no driver: the Redis and PostgreSQL channels are
imported only for a store of theirs, which has imported its driver already.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from functools import partial
from typing import Any

from ..config import check_size, duration
from ..exceptions import ConfigurationError
from ..stores.base import Store
from .cache import NearCache
from .channel import Channel, keep_up

__all__ = ["CAPABLE", "NearCache", "near_cache_for"]

#: The stores whose changes the near cache hears.
CAPABLE = "Redis and Redis Cluster (redis://, redis+cluster://), PostgreSQL on asyncpg"


def _channel(store: Store) -> tuple[Channel, str]:
    redis: Any = sys.modules.get("asyncsess.stores.redis")
    if redis is not None and isinstance(store, redis.RedisStore):
        from .redis import RedisChannel

        channel = RedisChannel(store)
        return channel, channel.what
    sql: Any = sys.modules.get("asyncsess.stores.sql")
    what = type(store).__name__
    if sql is not None and isinstance(store, sql.SQLStore):
        dialect = store.engine.dialect
        if dialect.name == "postgresql" and dialect.driver == "asyncpg":
            from .postgres import PostgresChannel

            pg = PostgresChannel(store)
            return pg, pg.what
        what = f"the SQL store on {dialect.name} ({dialect.driver})"
    raise ConfigurationError(
        f"near_cache needs a store that reports changes: {CAPABLE} "
        f"(postgresql+asyncpg://); memory:// needs none. {what} cannot: pass near_cache=0"
    )


def near_cache_for(
    store: Store, size: int, ttl: timedelta | float, user_refs: Any
) -> NearCache | None:
    """The near cache of a manager on ``store`` (``None`` when ``size`` is 0 or the store is
    process memory), its channel's task in :attr:`NearCache.run`.

    :class:`~asyncsess.ConfigurationError` for a bad setting or a store whose
    changes cannot be heard (MySQL/MariaDB, SQLite, MongoDB, files, a store of
    the app's own).
    """
    size = check_size("near_cache", size)
    seconds = duration(ttl, "near_cache_ttl")
    if not size or not type(store).persistent:
        return None
    channel, what = _channel(store)
    cache = NearCache(size, seconds, user_refs)
    cache.run = partial(keep_up, cache, channel, what, store.get_many)
    cache.prepare = channel.prepare
    return cache
