"""The store protocol: a small async persistence layer over opaque session records.

Stores hold no policy. They never see a raw token (only :attr:`Record.key`,
the token's SHA-256), never see a user id in privacy mode (only a keyed hash,
:attr:`Record.user_ref`) and never interpret :attr:`Record.payload`. The
:class:`~asyncsess.SessionManager` decides everything else: expiry, renewal,
sealing, versions.

Each record belongs to the user named by its ``user_ref``, which the store
indexes so that :meth:`Store.list_user` and :meth:`Store.delete_user` find it;
an empty ``user_ref`` is a session without a user (anonymous), which the store
keeps out of every user index (``list_user("")`` is empty, ``delete_user("")``
deletes nothing). :meth:`Store.replace` may change a record's
``user_ref`` (the manager moves records to the newest secret's reference):
the store moves the index entry in the same atomic step. Where that takes
several steps (Redis Cluster), a stale index entry may be left behind, so
``list_user`` and ``delete_user`` check each record's owner.

Rules every store keeps (each checked by :mod:`asyncsess.testing`):

- ``insert`` on a key that exists raises :class:`RecordExists` and changes nothing.
- A renewing ``get`` renews a record that is live and due in the same call
  (``expires_at = min(until, absolute_at)``, stored) and returns it renewed;
  any other record is returned unchanged (an expired one is never revived).
- Per user, every call sees the effects of every call that returned before it
  started (``insert``, ``replace``, ``delete`` then ``list_user``/``delete_user``);
  ``list_user`` returns records in no particular order; ``delete_user`` may
  spare a record inserted while it runs.
- ``scan`` yields every record held when it started and still held when it
  ended, as stored, in lists of 1 to ``batch`` records (a record written or
  deleted meanwhile may or may not be among them, and one may come twice).

A new backend is one module with a :class:`Store` subclass that passes the
contract kit, :mod:`asyncsess.testing` (``StoreContract`` for pytest, or
``await check_store(factory)``); register its URL scheme in
:mod:`asyncsess.stores._registry` or through the ``asyncsess.stores``
entry-point group.

Optional capability (not part of the contract; the manager looks for it):
``async def claim_sweep(self, seconds: float) -> bool`` takes the sweeping
turn of every process sharing the store for ``seconds`` (``False`` while
another process holds it), so a fleet sweeps once per interval. Redis has it.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self

from ..exceptions import ConfigurationError, StoreError

__all__ = ["Record", "RecordExists", "Renewal", "Store"]


class RecordExists(StoreError):
    """:meth:`Store.insert` found a record under the key already (nothing was written)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One stored session, immutable (``dataclasses.replace`` makes a changed copy).

    ``key`` is the token's SHA-256 in hex; ``payload`` is opaque to the store;
    ``expires_at`` is when the store may drop the record (the sliding idle
    expiry, never past ``absolute_at``); times are seconds since the epoch.
    ``user_ref`` is ``""`` for a session without a user (never indexed).
    """

    key: str
    user_ref: str
    payload: bytes
    version: int
    created_at: float
    expires_at: float
    absolute_at: float


class Renewal(NamedTuple):
    """A sliding-expiry extension that :meth:`Store.get` applies in the same call.

    Applied only to a record that is still live (``expires_at > now``) and due
    (``expires_at < threshold``): its ``expires_at`` becomes
    ``min(until, absolute_at)``. The record returned carries the new value.
    """

    now: float
    threshold: float
    until: float

    def apply(self, record: Record) -> Record | None:
        """Return the renewed record, or ``None`` when no renewal is due."""
        if not (self.now < record.expires_at < self.threshold):
            return None
        until = min(self.until, record.absolute_at)
        if until <= record.expires_at:
            return None
        return Record(
            record.key,
            record.user_ref,
            record.payload,
            record.version,
            record.created_at,
            until,
            record.absolute_at,
        )


class Store(abc.ABC):
    """Base class of every store.

    Every method may raise :class:`~asyncsess.StoreUnavailable` (or another
    :class:`~asyncsess.StoreError`) with the driver's exception chained; none
    returns a guess when the backend failed.
    """

    #: Whether records outlive the process (and so must be sealed in privacy mode).
    persistent: ClassVar[bool] = True
    #: Whether the backend drops expired records by itself (Redis TTLs, MongoDB's TTL
    #: index): :meth:`sweep` then only tidies indexes, and may be called rarely.
    native_expiry: ClassVar[bool] = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a store from its URL; options are the store's keyword arguments.

        Only a store registered under a URL scheme needs it.
        """
        raise ConfigurationError(f"{cls.__name__} cannot be built from a URL")

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (connect, create schema); called once before first use."""

    @abc.abstractmethod
    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        """Return the record stored under ``key`` (``None`` if absent), renewing it if due.

        With ``renew``, a record that is live and due is renewed in the same call
        (see :class:`Renewal`) and returned renewed; any other is returned as stored.
        """

    async def get_many(
        self, keys: Sequence[str], *, renew: Renewal | None = None
    ) -> list[Record | None]:
        """Return the records of several keys, in order; stores may do it in one round trip."""
        return [await self.get(key, renew=renew) for key in keys]

    @abc.abstractmethod
    async def insert(self, record: Record) -> None:
        """Store a new record (its key is fresh: 256 random bits hashed).

        It joins the index of its ``user_ref`` (none when ``user_ref`` is ``""``).
        A record stored under the key already is left alone and
        :class:`RecordExists` raised.
        """

    @abc.abstractmethod
    async def replace(self, record: Record, *, expected_version: int) -> bool:
        """Overwrite the record under ``record.key`` only if it is at ``expected_version``.

        The new record may have another ``user_ref``: its index entry moves with
        it in the same step. Returns ``False`` when the record is missing or at
        another version.
        """

    @abc.abstractmethod
    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Delete one record (only if it is at ``expected_version``, when given).

        ``True`` if this call deleted it.
        """

    @abc.abstractmethod
    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        """Delete every record of ``user_ref`` except the one keyed ``keep``; return the count.

        ``""`` names no user (0). A store may delete in several steps (none
        holding the backend for long); a record inserted meanwhile may survive.
        """

    @abc.abstractmethod
    async def list_user(self, user_ref: str) -> list[Record]:
        """Return every record of ``user_ref`` (expired ones may be included; none for ``""``)."""

    @abc.abstractmethod
    async def sweep(self, now: float, *, limit: int) -> int:
        """Delete at most ``limit`` records with ``expires_at <= now``; return the count."""

    @abc.abstractmethod
    async def count(self, now: float) -> tuple[int, int]:
        """Return how many records are live (``expires_at > now``) and how many expired."""

    @abc.abstractmethod
    def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        """Yield every record the store holds, as stored, in lists of 1 to ``batch`` (>= 1).

        What copies a store (:func:`asyncsess.migrate`). Expired records may be
        included. Each call to the backend is bounded like any other; a record
        written or deleted during the scan may or may not be yielded, and one may
        be yielded twice (Redis's ``SCAN`` can).
        """

    @abc.abstractmethod
    async def wipe(self) -> int:
        """Delete every record this store holds; return the count."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections this store opened (never a client it was given)."""
