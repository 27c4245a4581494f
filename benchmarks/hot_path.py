"""validate's own Python on the Redis path, without I/O: ``nox -s bench -- --hot-path``.

Sessions are created on the machine's Redis (127.0.0.1:6379); then the store's
redis-py client answers ``GET`` from a dict holding the very values Redis
held, so a validate runs every step of its Redis path (key check, the bounded
call, slots, batcher, row to ``Record``, decode cache) except the round trip.
Beside it, the floor's own Python: ``await get(sha256(token))`` on the same
dict. Printed: microseconds per call, medians of repeated tight loops. This
is a diagnostic for the 1-task rows, whose time is mostly the round trip;
the throughput figures come from ``nox -s bench``.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asyncsess import SessionManager
from asyncsess.stores.redis import RedisStore

from .rows.common import SECRET, user_data
from .rows.redis import URL, unique_prefix

SESSIONS = 1_000
CALLS = 20_000
REPEATS = 7


async def per_call_us(op: Callable[[str], Awaitable[object]], tokens: list[str]) -> float:
    """Median over :data:`REPEATS` loops of :data:`CALLS` calls: microseconds per call."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for i in range(CALLS):
            await op(tokens[i % len(tokens)])
        times.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(times)


async def run() -> dict[str, float]:
    """Measure and print; returns the figures (µs per call)."""
    mgr = SessionManager(URL, secret=SECRET, store_options={"prefix": unique_prefix("hot")})
    store = mgr.store
    assert isinstance(store, RedisStore)
    client: Any = store.client
    try:
        tokens = [await mgr.create(f"user-{i}", user_data(i)) for i in range(SESSIONS)]
        values: dict[Any, Any] = {}
        async for key in client.scan_iter(match=store.prefix + "s:*", count=1000):
            values[key.decode()] = await client.get(key)
        assert len(values) == SESSIONS, "every session's record, read back from Redis"

        async def from_dict(key: str) -> object:
            return values.get(key)

        client.get = from_dict  # this instance only: the store's reads now do no I/O
        values.update({hashlib.sha256(t.encode()).hexdigest(): b"x" for t in tokens})

        async def floor(token: str) -> object:
            return await from_dict(hashlib.sha256(token.encode()).hexdigest())

        for token in tokens:
            assert await mgr.validate(token) is not None
        figures = {
            "validate": await per_call_us(mgr.validate, tokens),
            "floor": await per_call_us(floor, tokens),
        }
        del client.get  # the class's own method again, for the wipe below
    finally:
        await store.wipe()
        await mgr.aclose()
    print(f"Redis validate without I/O: {figures['validate']:.2f} µs per call")
    print(f"the bare GET's own Python (sha256 + a coroutine): {figures['floor']:.2f} µs")
    return figures
