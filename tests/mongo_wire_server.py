"""Serve a MongoDB wire-protocol test server (mongoeco, in memory) on loopback.

Runs under Python >= 3.13 with ``mongoeco[wire]`` installed; started by the
``tests.backends.mongo`` plugin. Prints the bound port on one line, then
serves until SIGTERM/SIGINT (or, with ``--parent-pipe``, until its standard
input closes: the parent died)::

    python tests/mongo_wire_server.py [--host 127.0.0.1] [--port 0] [--parent-pipe]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading


def _on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.buffer.read()  # returns at EOF, when the parent closed the pipe or died
    loop.call_soon_threadsafe(stop.set)


async def serve(host: str, port: int, parent_pipe: bool) -> None:
    """Start the server, print its port and serve until told to stop."""
    from mongoeco.wire import AsyncMongoEcoProxyServer  # type: ignore[import-not-found]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if parent_pipe:
        threading.Thread(target=_on_stdin_eof, args=(loop, stop), daemon=True).start()
    async with AsyncMongoEcoProxyServer(host=host, port=port) as server:
        print(server.address.port, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--parent-pipe", action="store_true", help="exit when stdin closes")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in {"localhost", "::1"}:
        parser.error("the test server listens on loopback only")
    asyncio.run(serve(args.host, args.port, args.parent_pipe))


if __name__ == "__main__":
    main()
