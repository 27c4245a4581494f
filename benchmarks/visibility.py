"""Revoke-to-invisible latency across processes, with the near cache on (issue 13).

Three worker processes (``tests.nearcache.fleet``) validate the same sessions in a
loop with ``near_cache`` on; this process revokes them one by one through a manager
of its own and records, for every worker, how long after ``revoke`` returned that
worker's validate first said ``None`` (0 when it did before). Reported as p50, p99
and max over every (revoke, worker) pair, per store: Redis, the Redis Cluster and
PostgreSQL, each as the throughput rows run it.

    python -m benchmarks.visibility [--stores redis,redis_cluster,postgresql] [--revokes N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import sqlalchemy as sa

from asyncsess import SessionManager
from asyncsess.stores.sql import sessions_table
from tests.nearcache.fleet import fleet, nested, quantile

from .rows.common import SECRET
from .rows.redis import CLUSTER, URL, unique_prefix
from .rows.sql import POSTGRESQL, drop, unique_table

STORES = ("redis", "redis_cluster", "postgresql")
WORKERS = 3


@asynccontextmanager
async def _store(store: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(URL, store options) of a fresh prefix or table on the store; dropped after."""
    if store == "postgresql":
        table = unique_table("visibility")
        try:
            yield POSTGRESQL, {"table": table}
        finally:
            await drop(POSTGRESQL, sessions_table(sa.MetaData(), table))
    elif store == "redis_cluster":
        async with CLUSTER.use() as url:
            yield url, {"prefix": unique_prefix("visibility")}
    else:
        yield URL, {"prefix": unique_prefix("visibility")}


async def measure(store: str, revokes: int = 30) -> dict[str, Any]:
    """Revoke ``revokes`` sessions one by one; the latency each worker saw, summarised."""
    async with _store(store) as (url, options):
        writer = SessionManager(url, secret=SECRET, store_options=options)
        try:
            tokens = [await writer.create(f"user-{i}", nested(i)) for i in range(revokes)]
            async with fleet(url, options, SECRET, WORKERS) as workers:
                await workers.watch(tokens)
                delays: list[float] = []
                for i, token in enumerate(tokens):
                    await writer.revoke(token)
                    delays += await workers.seen_by_all(i, None, time.time(), 1.0)
                    await anyio.sleep(0.02)
                stats = await workers.stats()
            await writer.wipe()
        finally:
            await writer.aclose()
    ms = [d * 1000 for d in delays]
    return {
        "store": store,
        "workers": WORKERS,
        "revokes": revokes,
        "samples": len(ms),
        "p50_ms": quantile(ms, 0.5),
        "p99_ms": quantile(ms, 0.99),
        "max_ms": max(ms),
        "worker_near_cache_hits": [s["near_cache_hits"] for s in stats],
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The figures as a terminal table."""
    head = f"{'store':<14}{'workers':>8}{'revokes':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['store']:<14}{r['workers']:>8}{r['revokes']:>9}{r['p50_ms']:>9.2f}"
            f"{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}"
        )
    return "\n".join(lines)


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.visibility", description=__doc__)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--revokes", type=int, default=30)
    args = parser.parse_args(argv)
    rows = [await measure(s, args.revokes) for s in args.stores.split(",") if s in STORES]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
