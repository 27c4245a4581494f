"""The app processes of the soak (``worker.py``) and the load balancer in front of them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["AppDown", "AppProcess", "Fleet"]


class AppDown(ConnectionError):
    """The app process died (or was killed) before it answered."""


class AppProcess:
    """One ``python -m benchmarks.soak.worker`` process, spoken to over its stdin/stdout."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count()
        self._reader: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        """Whether the process runs and answers."""
        return self.proc is not None and self.proc.returncode is None and self._reader is not None

    async def start(self) -> None:
        """Start the process and wait (at most a minute) for its ready line."""
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - opened once per process start
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.soak.worker", *self.argv,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                limit=1 << 20,
            )  # fmt: skip
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            line = await self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"app process {self.name} exited at start:\n{tail}")
        self._reader = asyncio.create_task(self._read(self.proc.stdout))

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        try:
            while line := await stdout.readline():
                reply = json.loads(line)
                future = self._pending.pop(reply["i"], None)
                if future is not None and not future.done():
                    future.set_result(reply)
        finally:
            self._reader = None
            pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(AppDown(f"app process {self.name} died"))

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one operation and wait for its reply (:class:`AppDown` if the process dies)."""
        if not self.up or self.proc is None or self.proc.stdin is None:
            raise AppDown(f"app process {self.name} is down")
        i = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[i] = future
        self.proc.stdin.write(json.dumps({"i": i, "op": op, **args}).encode() + b"\n")
        return await future

    def kill(self) -> None:
        """SIGKILL the process (the soak's fault): its requests in flight fail."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    async def stop(self) -> None:
        """Close stdin (the process ends cleanly), or kill it if it does not."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Fleet:
    """The app processes behind a round-robin load balancer that skips dead ones."""

    def __init__(self, apps: list[AppProcess]) -> None:
        self.apps = apps
        self._next = itertools.cycle(range(len(apps)))

    def pick(self) -> AppProcess | None:
        """The next live app process, or ``None`` when every one is down."""
        for _ in range(len(self.apps)):
            app = self.apps[next(self._next)]
            if app.up:
                return app
        return None

    async def start(self) -> None:
        """Start every app process."""
        await asyncio.gather(*(app.start() for app in self.apps))

    async def stop(self) -> None:
        """Stop every app process."""
        await asyncio.gather(*(app.stop() for app in self.apps))
