"""The expiry sweeper: batched sweeps, and the background loop that runs them.

The loop sweeps about once per interval, at a random phase and pace: the
first pause is drawn from [0, 1] x the interval and each next from
[0.5, 1.5] x, so processes started together do not sweep in step. A store
offering ``claim_sweep(seconds) -> bool`` (an optional capability; Redis has
it) makes it a fleet's turn: only the process that claims it sweeps, so the
fleet sweeps about once per interval, not once per process. On a store with
``native_expiry`` (Redis, MongoDB) the interval is ten times longer: the
store drops expired records itself, a sweep only tidies its user index.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from .exceptions import AsyncsessError, fail_closed
from .stores.base import Store

__all__ = ["NATIVE_SLOWDOWN", "Progress", "run_sweeper", "sweep_until"]

log = logging.getLogger("asyncsess")

#: Called with the running count of a long sweep or wipe.
Progress = Callable[[int], object]
#: How much less often a store with native expiry is swept.
NATIVE_SLOWDOWN = 10


async def sweep_until(store: Store, now: float, batch: int, progress: Progress | None) -> int:
    """Delete records expired at ``now`` in batches of ``batch``; return the count.

    ``progress`` is called with the running total after each batch; the event
    loop gets a turn between batches.
    """
    total = 0
    while True:
        with fail_closed:
            removed = await store.sweep(now, limit=batch)
        total += removed
        if progress is not None:
            progress(total)
        if removed < batch:
            return total
        await anyio.lowlevel.checkpoint()


async def run_sweeper(
    store: Store,
    sweep: Callable[[], Awaitable[int]],
    interval: float,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``sweep()`` about once per ``interval`` seconds until cancelled (see above).

    A failed sweep is logged and tried again at the next turn.
    """
    task_status.started()
    claim: Callable[[float], Coroutine[Any, Any, bool]] | None
    claim = getattr(store, "claim_sweep", None)
    if getattr(store, "native_expiry", False):
        interval *= NATIVE_SLOWDOWN
    pace = random.Random()  # noqa: S311 - spreads timings, no secret
    await anyio.sleep(interval * pace.random())
    while True:
        try:
            with fail_closed:
                turn = claim is None or await claim(interval)
            removed = await sweep() if turn else 0
            if removed:
                log.debug("swept %d expired sessions", removed)
        except AsyncsessError as exc:
            log.warning("session sweep failed: %s", exc)
        await anyio.sleep(interval * pace.uniform(0.5, 1.5))
