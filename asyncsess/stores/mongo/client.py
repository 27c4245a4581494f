"""MongoDB client plumbing shared by :class:`~asyncsess.stores.mongo.MongoStore` and the
MongoDB accounts backend: a client from a URL and one bounded call
with driver errors mapped to asyncsess's (fail closed).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import anyio
import pymongo
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from ...exceptions import AsyncsessError, ConfigurationError, StoreError, StoreUnavailable

__all__ = ["DEFAULT_DATABASE", "call", "client_from_url", "driver_error"]

DEFAULT_DATABASE: Final = "asyncsess"
_ISOLATE = sys.version_info < (3, 12)
T = TypeVar("T")


def client_from_url(url: str, *, timeout: float, **options: Any) -> AsyncMongoClient[Any]:
    """A client for ``mongodb[+srv]://...`` whose every operation and server selection is
    bounded by ``timeout`` unless ``options`` say otherwise (other options go to
    :class:`pymongo.AsyncMongoClient`). A URL or option it refuses is a ConfigurationError.
    """
    ms = max(1, int(timeout * 1000))
    options.setdefault("serverSelectionTimeoutMS", ms)
    options.setdefault("timeoutMS", ms)
    try:
        return AsyncMongoClient(url, **options)
    except PyMongoError as exc:
        raise ConfigurationError(f"invalid MongoDB URL or client option: {exc}") from exc


def driver_error(exc: PyMongoError, what: str, timeout: float) -> StoreError:
    """The asyncsess error for a PyMongo error during ``what`` (fail closed)."""
    if isinstance(exc, ConnectionFailure) or exc.timeout:
        return StoreUnavailable(
            f"MongoDB did not answer {what} within {timeout:g} s "
            f"({type(exc).__name__}); check that the server is reachable"
        )
    return StoreError(f"MongoDB {what} failed: {type(exc).__name__}")


async def _isolated(op: Awaitable[T], grace: float) -> T:
    """Await ``op`` in a task of its own that a cancellation of the caller does not reach.

    On Python 3.11, ``asyncio.wait_for`` (PyMongo's connection pool waits with it)
    leaves the pool's lock held if it is cancelled while handling its own timeout,
    and the pool deadlocks. So a cancelled caller lets the operation finish (it is
    bounded by the timeout) for up to ``grace`` seconds. Not needed on 3.12+.
    """
    task = asyncio.ensure_future(op)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with anyio.move_on_after(grace, shield=True):
            await asyncio.wait([task])
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()  # mark it retrieved: the caller is cancelled anyway
        raise


async def call(
    what: str,
    op: Callable[[], Awaitable[T]],
    *,
    seconds: float,
    duplicate: Callable[[], AsyncsessError] | None = None,
) -> T:
    """Run ``op()`` (driver calls) bounded by ``seconds``, mapping driver errors.

    A duplicate key becomes ``duplicate()`` when given (else a StoreError).
    """
    try:
        with pymongo.timeout(seconds):
            return await (_isolated(op(), seconds + 1) if _ISOLATE else op())
    except DuplicateKeyError as exc:
        if duplicate is not None:
            raise duplicate() from exc
        raise driver_error(exc, what, seconds) from exc
    except PyMongoError as exc:
        raise driver_error(exc, what, seconds) from exc
