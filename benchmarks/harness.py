"""Measuring one row: a lookup run by N concurrent tasks for a fixed time.

A row is one way of answering "is this token a live session?": asyncsess's
``validate`` on some store, the bare client doing the same lookup (the
floor), or a peer library. Rows of one store are measured alternately, in
one process, several times; ratios come from the medians of that one run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal

import anyio

Op = Callable[[str], Awaitable[object]]
Kind = Literal["asyncsess", "floor", "peer"]


@dataclass(frozen=True)
class Prepared:
    """A row ready to run: its lookup and the tokens (all live) to look up.

    ``before``, when set, runs before each sample, outside its timing (a cache
    in front of the store brought back to what a running app's would hold).
    """

    op: Op
    tokens: list[str]
    before: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Row:
    """One line of the table. ``prepare(n)`` sets up ``n`` live sessions."""

    store: str
    name: str
    kind: Kind
    prepare: Callable[[int], AbstractAsyncContextManager[Prepared]]


@dataclass
class Sample:
    """One timed run of one row at one concurrency."""

    ops: int
    seconds: float
    cpu_seconds: float
    latencies_ns: list[int] = field(repr=False)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds


async def check_valid(prepared: Prepared, how_many: int = 50) -> None:
    """Fail loudly if the row does not find live sessions: a fast miss is no result."""
    for token in prepared.tokens[:how_many]:
        if not await prepared.op(token):
            raise AssertionError("the row's lookup did not find a live session")


async def measure(prepared: Prepared, concurrency: int, seconds: float) -> Sample:
    """Run ``prepared.op`` from ``concurrency`` tasks for about ``seconds``."""
    if prepared.before is not None:
        await prepared.before()
    tokens = prepared.tokens
    op = prepared.op
    latencies: list[int] = []
    count = 0
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)

    async def worker(offset: int) -> None:
        nonlocal count
        i = offset
        n = len(tokens)
        record = latencies.append
        while True:
            start = clock()
            if start >= deadline:
                return
            await op(tokens[i % n])
            record(clock() - start)
            i += concurrency
            count += 1

    cpu0, t0 = time.process_time(), clock()
    async with anyio.create_task_group() as tg:
        for offset in range(concurrency):
            tg.start_soon(worker, offset * 7919)
    elapsed = (clock() - t0) / 1e9
    return Sample(count, elapsed, time.process_time() - cpu0, latencies)


def percentile(values: list[int], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def summarize(samples: list[Sample]) -> dict[str, float]:
    """Medians over repetitions: ops/s, p50 and p99 latency (µs), client CPU per op (µs)."""
    return {
        "ops_per_s": statistics.median(s.ops_per_s for s in samples),
        "p50_us": statistics.median(percentile(s.latencies_ns, 0.5) for s in samples) / 1e3,
        "p99_us": statistics.median(percentile(s.latencies_ns, 0.99) for s in samples) / 1e3,
        "cpu_us_per_op": statistics.median(s.cpu_seconds / max(s.ops, 1) for s in samples) * 1e6,
        "repetitions": len(samples),
    }


AsyncCM = Callable[[int], AsyncIterator[Prepared]]
