"""The stores the near cache runs on: Redis, a Redis Cluster and PostgreSQL, each under a
prefix or table of the test's own (the backends' fixtures)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from asyncsess import SessionManager
from tests.backends import StoreSpec
from tests.conftest import ABSOLUTE, IDLE, SECRET, FakeClock

NEAR = ["redis", "redis_cluster", "postgresql"]


@pytest.fixture(params=NEAR)
def near_spec(request: pytest.FixtureRequest) -> StoreSpec:
    """A store the near cache can run on."""
    spec: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return spec


def manager(spec: StoreSpec, clock: FakeClock | None = None, **options: Any) -> SessionManager:
    """A manager on ``spec``'s store (its own client), the test settings, ``options`` on top."""
    settings: dict[str, Any] = {"idle_timeout": IDLE, "absolute_timeout": ABSOLUTE}
    if clock is not None:
        settings["clock"] = clock
    return SessionManager(
        spec.url, secret=SECRET, store_options=spec.options, **{**settings, **options}
    )


@pytest.fixture
async def near(near_spec: StoreSpec, clock: FakeClock) -> AsyncIterator[SessionManager]:
    """A running manager with the near cache on."""
    async with manager(near_spec, clock, near_cache=1000) as mgr:
        yield mgr


@pytest.fixture
async def other(near_spec: StoreSpec, clock: FakeClock) -> AsyncIterator[SessionManager]:
    """Another manager on the same store (its own connections, no near cache): "another
    process" as far as the store can tell."""
    mgr = manager(near_spec, clock)
    try:
        yield mgr
    finally:
        await mgr.aclose()


async def eventually(check: Callable[[], Any], within: float = 1.0) -> float:
    """Poll ``check()`` (sync or async) until it is true; return how long it took."""
    start = time.monotonic()
    while True:
        result = check()
        if hasattr(result, "__await__"):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"not true within {within} s")
        await anyio.sleep(0.001)
