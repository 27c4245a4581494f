"""asyncsess._deadline: store calls bounded by one shared ticker instead of a timer each."""

from __future__ import annotations

import asyncio
import time

import pytest

from asyncsess._deadline import Deadlines

pytestmark = pytest.mark.anyio  # on asyncio (conftest): the stores using it are asyncio-only


async def test_an_overrunning_call_raises_timeout_error() -> None:
    deadlines = Deadlines(0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError), deadlines:
        await asyncio.sleep(30)
    assert time.monotonic() - started < 2.0  # 1.25 x the timeout, generously


async def test_calls_that_finish_are_untouched_and_forgotten() -> None:
    deadlines = Deadlines(0.2)
    for _ in range(3):
        with deadlines:
            await asyncio.sleep(0)
    await asyncio.sleep(0.6)  # ticks pass with nothing in flight: nothing is cancelled
    with deadlines:
        assert await asyncio.sleep(0, result="done") == "done"


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(30)

    async def call() -> None:
        with deadlines:
            await asyncio.sleep(30)

    task = asyncio.create_task(call())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_only_the_overrunning_call_of_several_times_out() -> None:
    deadlines = Deadlines(0.2)

    async def call(seconds: float) -> str:
        with deadlines:
            await asyncio.sleep(seconds)
        return "done"

    results = await asyncio.gather(call(0), call(30), call(0.01), return_exceptions=True)
    assert results[0] == results[2] == "done"
    assert isinstance(results[1], TimeoutError)


def test_one_deadlines_object_serves_one_event_loop_after_another() -> None:
    deadlines = Deadlines(0.2)

    async def overrun() -> None:
        with deadlines:
            await asyncio.sleep(30)

    for _ in range(2):  # the second loop gets a ticker of its own
        with pytest.raises(TimeoutError):
            asyncio.run(overrun())
