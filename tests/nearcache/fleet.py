"""A fleet of OS processes validating the same sessions with the near cache on, while this
process changes them: how long each change takes to be seen by every process.

Used by ``tests/nearcache/test_fleet.py`` and by the bench's visibility row
(``benchmarks/visibility.py``). Each worker (``python -m tests.nearcache.fleet URL
OPTIONS SECRET PAUSE``) reads the tokens to watch as one JSON line on stdin, validates
each once, says ``{"ready": true}``, then validates them all in a loop (pausing ``PAUSE``
seconds between passes, as a server does between requests), writing a line
``{"i": <token index>, "state": <version and data, or null>, "t": <time.time()>}`` the
first time it sees a token's state change; ``stats`` on stdin makes it write its
manager's :class:`~asyncsess.Stats`, ``stop`` ends it. Times are wall-clock
(``time.time``), comparable across processes on one machine.

``python -m tests.nearcache.fleet revoke URL OPTIONS SECRET TOKEN`` is another process
that revokes one session once it has started and prints when its ``revoke`` returned.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from asyncsess import Session, SessionManager
from asyncsess.session import thaw

ROOT = Path(__file__).resolve().parents[2]
State = tuple[int, str] | None


def state_of(session: Session | None) -> State:
    """What a worker reports of a session: its version and data (as sorted JSON), or ``None``."""
    if session is None:
        return None
    return session.version, json.dumps(thaw(session.data), sort_keys=True)


def nested(i: int, round_: int = 0) -> dict[str, Any]:
    """Session data shaped like an app's: nested mappings and lists."""
    return {
        "role": "member",
        "cart": [{"sku": f"sku-{i}", "qty": round_ + 1}, {"sku": "gift", "qty": 1}],
        "prefs": {"theme": "dark", "langs": ["en", "fr"], "round": round_},
    }


# -- the worker ---------------------------------------------------------------------------


async def _worker(url: str, options: dict[str, Any], secret: str, pause: float) -> None:
    mgr = SessionManager(url, secret=secret, near_cache=100_000, store_options=options)
    stdin = anyio.wrap_file(sys.stdin)

    def say(**what: Any) -> None:
        sys.stdout.write(json.dumps(what) + "\n")
        sys.stdout.flush()

    async with mgr:
        tokens: list[str] = json.loads(await stdin.readline())
        seen: list[Session | None] = [await mgr.validate(t) for t in tokens]
        states = [state_of(s) for s in seen]
        say(ready=True)
        stop = False

        async def commands() -> None:
            nonlocal stop
            async for line in stdin:
                if line.strip() == "stats":
                    say(stats=dataclasses.asdict(await mgr.stats()))
                elif line.strip() == "stop":
                    break
            stop = True

        async with anyio.create_task_group() as tg:
            tg.start_soon(commands)
            while not stop:
                for i, token in enumerate(tokens):
                    session = await mgr.validate(token)
                    if session is not seen[i]:
                        seen[i] = session
                        now = state_of(session)
                        if now != states[i]:
                            states[i] = now
                            say(i=i, state=now, t=time.time())
                await anyio.sleep(pause)
        say(stats=dataclasses.asdict(await mgr.stats()))


async def _revoker(url: str, options: dict[str, Any], secret: str, token: str) -> None:
    mgr = SessionManager(url, secret=secret, store_options=options)
    try:
        assert await mgr.validate(token) is not None  # connected: the revoke alone is timed
        await anyio.sleep(0.2)
        assert await mgr.revoke(token)
        sys.stdout.write(f"{time.time()!r}\n")
    finally:
        await mgr.aclose()


# -- the controller -----------------------------------------------------------------------


@dataclass
class _Worker:
    process: Process
    ready: anyio.Event = field(default_factory=anyio.Event)
    seen: dict[int, list[tuple[State, float]]] = field(default_factory=dict)
    stats: list[dict[str, int]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def latest(self, i: int) -> tuple[State, float] | None:
        changes = self.seen.get(i)
        return changes[-1] if changes else None


class Fleet:
    """``size`` worker processes on one store (see the module docstring)."""

    def __init__(self, workers: list[_Worker]) -> None:
        self.workers = workers

    async def send(self, line: str) -> None:
        """Write ``line`` to every worker's stdin."""
        for w in self.workers:
            assert w.process.stdin is not None
            await w.process.stdin.send((line + "\n").encode())

    async def watch(self, tokens: list[str]) -> None:
        """Give every worker the tokens to watch; return once each has read them all once."""
        await self.send(json.dumps(tokens))
        with anyio.fail_after(60):
            for w in self.workers:
                await w.ready.wait()

    async def seen_by_all(self, i: int, state: State, since: float, bound: float) -> list[float]:
        """Seconds after ``since`` at which each worker saw token ``i`` in ``state`` (0 when it
        saw it before); ``inf`` for a worker that had not within ``bound`` + 2 s."""
        deadline = time.monotonic() + bound + 2.0
        while time.monotonic() < deadline:
            latest = [w.latest(i) for w in self.workers]
            if all(x is not None and x[0] == state for x in latest):
                return [max(0.0, x[1] - since) for x in latest if x is not None]
            await anyio.sleep(0.002)
        return [
            max(0.0, x[1] - since) if x is not None and x[0] == state else math.inf
            for x in (w.latest(i) for w in self.workers)
        ]

    async def stats(self) -> list[dict[str, int]]:
        """Every worker's manager's stats, now."""
        counts = [len(w.stats) for w in self.workers]
        await self.send("stats")
        with anyio.fail_after(30):
            while any(len(w.stats) == n for w, n in zip(self.workers, counts, strict=True)):
                await anyio.sleep(0.005)
        return [w.stats[-1] for w in self.workers]

    def errors(self) -> str:
        """What the workers wrote on stderr (for failure messages)."""
        return "\n".join("".join(w.stderr)[-2000:] for w in self.workers)


async def _read(worker: _Worker) -> None:
    assert worker.process.stdout is not None
    buffer = ""
    async for chunk in TextReceiveStream(worker.process.stdout):
        buffer += chunk
        *lines, buffer = buffer.split("\n")
        for line in lines:
            message = json.loads(line)
            if "ready" in message:
                worker.ready.set()
            elif "stats" in message:
                worker.stats.append(message["stats"])
            else:
                state = message["state"]
                worker.seen.setdefault(message["i"], []).append(
                    (None if state is None else (state[0], state[1]), message["t"])
                )


async def _drain(worker: _Worker) -> None:
    assert worker.process.stderr is not None
    async for chunk in TextReceiveStream(worker.process.stderr):
        worker.stderr.append(chunk)


@asynccontextmanager
async def fleet(
    url: str, options: dict[str, Any], secret: str, size: int = 3, pause: float = 0.001
) -> AsyncIterator[Fleet]:
    """Start ``size`` workers on the store at ``url`` (with ``store_options``), each pausing
    ``pause`` seconds between passes over its tokens; stop them after."""
    module = "tests.nearcache.fleet"
    command = [sys.executable, "-m", module, url, json.dumps(options), secret, str(pause)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with AsyncExitStack() as stack:
        workers = []
        for _ in range(size):
            process = await anyio.open_process(command, cwd=ROOT, env=env)
            stack.push_async_callback(process.aclose)
            workers.append(_Worker(process))
        tg = await stack.enter_async_context(anyio.create_task_group())
        for w in workers:
            tg.start_soon(_read, w)
            tg.start_soon(_drain, w)
        try:
            running = Fleet(workers)
            yield running
            await running.send("stop")
            with anyio.fail_after(30):
                for w in workers:
                    await w.process.wait()
        finally:
            for w in workers:
                if w.process.returncode is None:
                    w.process.kill()


# -- one scenario, shared by the tests and the bench ----------------------------------------


@dataclass
class Visibility:
    """Seconds from each change's acknowledgement to its sight, per kind of change, every
    worker (``inf``: not seen within the bound + 2 s)."""

    delays: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, delays: list[float]) -> None:
        self.delays.setdefault(kind, []).extend(delays)

    def all(self) -> list[float]:
        return sorted(d for ds in self.delays.values() for d in ds)


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


async def changes(
    fleet_: Fleet, mgr: SessionManager, rounds: int = 4, bound: float = 0.05
) -> Visibility:
    """Create sessions, have the fleet watch them, then revoke, update, rotate and
    revoke_all them through ``mgr`` (another process's manager), ``rounds`` times each;
    measure how long each takes to be seen by every worker."""
    alice = [await mgr.create("alice", nested(i)) for i in range(3 * rounds)]
    bob = [await mgr.create("bob", nested(100 + i)) for i in range(rounds)]
    tokens = alice + bob
    await fleet_.watch(tokens)
    seen = Visibility()

    async def measure(kind: str, i: int, change: Awaitable[object], state: State) -> None:
        await change
        done = time.time()
        seen.add(kind, await fleet_.seen_by_all(i, state, done, bound))
        await anyio.sleep(0.01)

    for r in range(rounds):
        await measure("revoke", r, mgr.revoke(tokens[r]), None)
        j = rounds + r
        data = nested(j, round_=1)
        updated = (2, json.dumps(data, sort_keys=True))
        await measure("update", j, mgr.update(tokens[j], data), updated)
        k = 2 * rounds + r
        await measure("rotate", k, mgr.rotate(tokens[k]), None)
    await mgr.revoke_all("bob")
    done = time.time()
    for i in range(len(alice), len(tokens)):
        seen.add("revoke_all", await fleet_.seen_by_all(i, None, done, bound))
    return seen


if __name__ == "__main__":
    if sys.argv[1] == "revoke":
        anyio.run(_revoker, sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        anyio.run(_worker, sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
