"""A TCP relay on loopback that can drop every connection or blackhole traffic.

``pass``: bytes flow both ways. ``drop``: every open connection is reset and new
ones are reset on arrival. ``blackhole``: connections stay open (new ones are
accepted) but nothing is forwarded, as when a network path silently loses
packets; on :meth:`heal` the blackholed connections are reset, as TCP would once
its retransmissions gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any, Literal

__all__ = ["Relay"]

Mode = Literal["pass", "drop", "blackhole"]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a dropped connection looks to the peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            linger = struct.pack("ii", 1, 0)  # on, 0 s: close() sends RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    writer.transport.abort()


class Relay:
    """Forward ``127.0.0.1:port`` to ``target_port``; :meth:`start` inside a running loop."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.target_port = host, target_port
        self.mode: Mode = "pass"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen on a spare loopback port (:attr:`port`)."""
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def drop(self) -> None:
        """Reset every connection now and every new one until :meth:`heal`."""
        self.mode = "drop"
        self._reset_all()

    def blackhole(self) -> None:
        """Stop forwarding: connections stay open, bytes vanish, until :meth:`heal`."""
        self.mode = "blackhole"

    def heal(self) -> None:
        """Forward again; connections that lost bytes in a blackhole are reset."""
        if self.mode == "blackhole":
            self._reset_all()
        self.mode = "pass"

    def _reset_all(self) -> None:
        for client, upstream in list(self._pairs):
            _reset(client)
            _reset(upstream)
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self.mode == "drop":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                if self.mode == "pass":
                    writer.write(chunk)
                    await writer.drain()
        writer.transport.abort()

    async def aclose(self) -> None:
        """Stop listening and reset every connection."""
        if self._server is not None:
            self._server.close()
        self._reset_all()
        await asyncio.gather(*self._handlers, return_exceptions=True)  # each ends on its reset
        if self._server is not None:
            await self._server.wait_closed()
