"""Several OS processes with the near cache on, validating the same sessions in a loop,
while this process revokes, updates, rotates and revokes all of a user's: every change is
seen by every process within 50 ms, on Redis, a Redis Cluster and PostgreSQL; and with
every process's channel cut, a revoke made meanwhile is seen within the loss bound, and
the caches come back. The figures (p50, p99) are printed (``pytest -s``)."""

from __future__ import annotations

import json
import math
import sys
import time

import anyio
import pytest

from tests.backends import StoreSpec
from tests.conftest import SECRET

from .conftest import manager
from .faults import kill_channels
from .fleet import ROOT, changes, fleet, nested, quantile

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(240)]

WORKERS = 3
BOUND = 0.05  # seconds: the bound on loopback
LOSS_BOUND = 1.0  # seconds: a cut channel is found within this


def _report(what: str, delays: list[float]) -> str:
    ms = [d * 1000 for d in delays]
    return (
        f"{what}: {len(ms)} sightings, p50 {quantile(ms, 0.5):.2f} ms, "
        f"p99 {quantile(ms, 0.99):.2f} ms, max {max(ms):.2f} ms"
    )


async def test_every_change_is_seen_by_every_process_within_50_ms(near_spec: StoreSpec) -> None:
    async with (
        fleet(near_spec.url, near_spec.options, SECRET, WORKERS) as workers,
        manager(near_spec) as writer,
    ):
        seen = await changes(workers, writer, rounds=5, bound=BOUND)
        stats = await workers.stats()
        print()
        for kind, delays in seen.delays.items():
            print(_report(f"{near_spec.url.split(':')[0]} {kind}", delays))
        everything = seen.all()
        print(_report("all", everything))
        assert len(everything) == WORKERS * (3 * 5 + 5), workers.errors()
        assert max(everything) <= BOUND, _report("all", everything) + "\n" + workers.errors()
        for figures in stats:
            assert figures["near_cache_hits"] > 0 and figures["near_cache_resets"] == 0


async def test_a_cut_channel_is_found_and_comes_back_in_every_process(
    near_spec: StoreSpec,
) -> None:
    async with (
        fleet(near_spec.url, near_spec.options, SECRET, WORKERS) as workers,
        manager(near_spec) as writer,
    ):
        tokens = [await writer.create("pat", nested(i)) for i in range(4)]
        await workers.watch(tokens)
        assert await kill_channels(near_spec.url, near_spec.options) >= WORKERS
        assert await writer.revoke(tokens[0])  # while the channels are down
        lost = await workers.seen_by_all(0, None, time.time(), LOSS_BOUND)
        assert max(lost) <= LOSS_BOUND, workers.errors()
        print(f"\nrevoke while cut: {_report('seen', lost)}")
        before = await workers.stats()
        assert all(f["near_cache_resets"] >= 1 for f in before)
        # back: a change is heard within the bound again, and hits resume
        deadline = time.monotonic() + 10
        while True:
            stats = await workers.stats()
            if all(
                f["near_cache_hits"] > b["near_cache_hits"]
                for f, b in zip(stats, before, strict=True)
            ):
                break
            assert time.monotonic() < deadline, "the caches did not come back"
        assert await writer.revoke(tokens[1])
        again = await workers.seen_by_all(1, None, time.time(), BOUND)
        assert max(again) <= BOUND and not any(map(math.isinf, again)), workers.errors()


async def test_a_loop_that_never_waits_still_hears_a_change(near_spec: StoreSpec) -> None:
    """This process validates from memory without awaiting anything else while another
    process revokes: the hits let the event loop run often enough for the channel."""
    async with manager(near_spec, near_cache=10) as mgr:
        token = await mgr.create("quinn", nested(1))
        assert await mgr.validate(token) is not None
        command = [sys.executable, "-m", "tests.nearcache.fleet", "revoke", near_spec.url]
        command += [json.dumps(near_spec.options), SECRET, token]
        async with await anyio.open_process(command, cwd=ROOT) as revoker:
            started = time.monotonic()
            while await mgr.validate(token) is not None:  # a hit never waits for anything
                assert time.monotonic() - started < 30, "the revoke was never seen"
            seen = time.time()
            assert revoker.stdout is not None
            revoked = float((await revoker.stdout.receive()).decode())
            assert await revoker.wait() == 0
        assert seen - revoked <= BOUND
        assert (await mgr.stats()).near_cache_hits > 1000  # it was spinning on hits
