"""Cutting near-cache channels from the outside, as an operator or a failure would:
``CLIENT KILL`` of the connections tracking a prefix, ``pg_terminate_backend`` of the
connections listening to a table. Each finds them by the name the server shows
(``CLIENT LIST``, ``pg_stat_activity``), as documented, not by asyncsess's internals."""

from __future__ import annotations

from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asyncsess.nearcache.postgres import NAME as PG_NAME
from asyncsess.nearcache.redis import connection_name


async def _kill_on(redis: Redis, prefix: str) -> int:
    client: Any = redis  # execute_command is untyped
    name = connection_name(prefix)
    killed = 0
    for conn in await client.client_list():
        if conn.get("name") == name:
            killed += int(await client.execute_command("CLIENT", "KILL", "ID", conn["id"]))
    return killed


async def kill_redis_channels(url: str, prefix: str) -> int:
    """``CLIENT KILL`` every near-cache connection of ``prefix``'s stores; the count."""
    if url.startswith("redis+cluster://"):
        cluster = RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
        try:
            ready = await cluster.initialize()
            nodes = [(n.host, int(n.port)) for n in ready.get_primaries()]
        finally:
            await cluster.aclose()
        killed = 0
        for host, port in nodes:
            async with Redis(host=host, port=port) as client:
                killed += await _kill_on(client, prefix)
        return killed
    async with Redis.from_url(url) as client:
        return await _kill_on(client, prefix)


def _dsn(url: str) -> str:
    rest = url.split("://", 1)[1]
    return f"postgresql://{rest}"


async def kill_pg_channels(url: str, table: str) -> int:
    """``pg_terminate_backend`` every near-cache connection listening to ``table``; the count."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        name = f"{PG_NAME}:{table}"[:63]
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        return sum(bool(r[0]) for r in rows)
    finally:
        await conn.close()


async def pg_execute(url: str, sql: str, *args: Any) -> str:
    """Run one statement on its own connection, as another tool or an operator would."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        return str(await conn.execute(sql, *args))
    finally:
        await conn.close()


async def kill_channels(url: str, options: dict[str, Any]) -> int:
    """Cut the near-cache channels of the store at ``url`` (with ``store_options``)."""
    if url.startswith("redis"):
        return await kill_redis_channels(url, options["prefix"])
    return await kill_pg_channels(url, options["table"])
