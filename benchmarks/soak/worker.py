"""One app process of the soak: a SessionManager driven by JSON lines on stdin.

Each request line is ``{"i": id, "op": name, ...arguments}``; each reply line is
``{"i": id, "ok": bool, "r": result, "now": clock before, "after": clock after,
"err": exception class}``. Requests run concurrently; a store failure is a reply
with ``ok: false``, never a crash. ``clock`` steps this process's clock (the
manager's injected ``clock=``). EOF on stdin ends the process.

    python -m benchmarks.soak.worker STORE_URL --options '{"timeout": 2}' --users u1:pw1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import anyio

import asyncsess

#: The soak's shared secret (not a real one: the soak's stores live in a temporary directory).
SECRET = "soak-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


class App:
    """The manager of this process and the handlers of the soak's operations."""

    mgr: asyncsess.SessionManager

    def __init__(self) -> None:
        self.offset = 0.0

    def clock(self) -> float:
        """Wall-clock time plus the step the soak injected."""
        return time.time() + self.offset

    async def call(self, request: dict[str, Any]) -> Any:
        """Run one operation; return its JSON-able result."""
        mgr, op = self.mgr, request["op"]
        if op == "validate":
            session = await mgr.validate(request["token"])
            if session is None:
                return None
            return {
                "u": session.user_id,
                "v": session.version,
                "e": session.expires,
                "a": session.absolute_expires,
                "rev": session.data.get("rev"),
            }
        if op == "create":
            return await mgr.create(request["user"], request["data"])
        if op == "update":
            return await mgr.update(request["token"], request["data"])
        if op == "rotate":
            return await mgr.rotate(request["token"])
        if op == "revoke":
            return await mgr.revoke(request["token"])
        if op == "revoke_all":
            return await mgr.revoke_all(request["user"], keep=request.get("keep"))
        if op == "login":
            return await mgr.login(request["username"], request["password"])
        if op == "clock":
            self.offset = float(request["offset"])
            return self.offset
        raise ValueError(f"unknown soak operation {op!r}")

    async def handle(self, request: dict[str, Any], out: asyncio.StreamWriter) -> None:
        """Answer one request line."""
        reply: dict[str, Any] = {"i": request["i"], "now": self.clock()}
        try:
            reply["r"] = await self.call(request)
            reply["ok"] = True
        except asyncsess.AsyncsessError as exc:
            reply.update(ok=False, err=type(exc).__name__, msg=str(exc)[:120])
        except Exception as exc:  # noqa: BLE001 - reported to the oracle as a bug, not a fault
            reply.update(ok=False, err=f"BUG {type(exc).__name__}: {exc}")
        reply["after"] = self.clock()
        out.write(json.dumps(reply).encode() + b"\n")


async def serve(args: argparse.Namespace) -> None:
    """Open the manager, say ready, then answer requests until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    out = asyncio.StreamWriter(transport, protocol, None, loop)
    # cheap hashing: the soak measures the session store, not argon2
    accounts = asyncsess.Accounts(
        "memory://", hasher=asyncsess.PasswordHasher(time_cost=1, memory_cost=8 * 1024)
    )
    for pair in args.users:
        username, password = pair.split(":", 1)
        await accounts.create_user(username, password)
    app = App()
    app.mgr = mgr = asyncsess.SessionManager(
        args.store,
        secret=SECRET,
        idle_timeout=args.idle,
        absolute_timeout=args.absolute,
        sweep_interval=args.sweep,
        clock=app.clock,
        store_options=json.loads(args.options) or None,
        accounts=accounts,
    )
    async with mgr, anyio.create_task_group() as tg:
        out.write(b'{"ready": true}\n')
        while line := await reader.readline():
            tg.start_soon(app.handle, json.loads(line), out)
        tg.cancel_scope.cancel()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store")
    parser.add_argument("--options", default="{}", help="store options as JSON")
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--absolute", type=float, default=60.0)
    parser.add_argument("--sweep", type=float, default=5.0)
    parser.add_argument("--users", nargs="*", default=[], help="username:password to log in")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
