"""A dependency-free progress bar for the command line, drawn only on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

__all__ = ["Progress", "tracked"]

T = TypeVar("T")


class Progress:
    """A one-line progress bar on a terminal (silent when ``stream`` is not a TTY)."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.label, self.total = label, total
        self.enabled = self.stream.isatty()
        self._drawn = 0.0
        self._shown: int | None = None  # the count on screen

    def update(self, done: int, *, force: bool = False) -> None:
        """Redraw with ``done`` items finished (at most ten times a second)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < 0.1):
            return
        self._drawn, self._shown = now, done
        if self.total:
            share = min(done / self.total, 1.0)
            bar = "#" * int(share * 30)
            line = f"{self.label} [{bar:<30}] {share:4.0%} {done}/{self.total}"
        else:
            line = f"{self.label} {done}…"
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()

    def close(self, done: int) -> None:
        """Draw the final state (unless it is on screen already) and end the line."""
        if self.enabled:
            if done != self._shown:
                self.update(done, force=True)
            self.stream.write("\n")
            self.stream.flush()


async def tracked(
    label: str, total: int, run: Callable[[Callable[[int], None]], Awaitable[T]]
) -> T:
    """Await ``run(update)``, drawing a bar on stderr from the counts it passes ``update``.

    The bar ends at the last count, or at the result when that is a count.
    """
    bar, done = Progress(label, total), 0

    def update(count: int) -> None:
        nonlocal done
        done = count
        bar.update(count)

    try:
        result = await run(update)
        if isinstance(result, int):
            done = result
        return result
    finally:
        bar.close(done)
