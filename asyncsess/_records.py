"""A manager's session records on its store: the writes behind the public API.

Open one, find one, create, rotate or update one, end one (by token or by
id) or all of a user's, list a user's, trim a user's oldest. Policy-free
helpers of :class:`~asyncsess.SessionManager`; every store failure is mapped
to a :class:`~asyncsess.StoreError` (fail closed). Each change is emitted as
a lifecycle event (:mod:`asyncsess.observe.events`); once each write is
done, the near cache forgets what it changed (:mod:`asyncsess.nearcache`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

from ._cache import DecodeCache
from ._codec import Codec
from .exceptions import SessionConflict, fail_closed
from .nearcache import NearCache
from .observe.events import Events
from .session import Session, SessionInfo, freeze
from .stores.base import Record, Store
from .tokens import new_token

_SESSION_ID = re.compile(r"[0-9a-f]{64}")
_UNCHANGED: AbstractContextManager[None] = nullcontext()

__all__ = ["RETRIES", "Found", "Records", "live"]

#: How many times in a row rotate and an unversioned update retry after losing to a writer.
RETRIES = 16


class Found(NamedTuple):
    """A live session's record, opened: what ``rotate`` and ``update`` work from."""

    token: str
    record: Record
    now: float
    user_id: str | None
    data: dict[str, Any]


def live(record: Record | None, now: float) -> bool:
    """Whether ``record`` exists and neither its sliding nor its absolute expiry has passed."""
    return record is not None and record.expires_at > now and record.absolute_at > now


class Records:
    """One manager's records: its store, codec, cache and events, and its two timeouts."""

    __slots__ = (
        "absolute_timeout",
        "cache",
        "clock",
        "codec",
        "events",
        "idle_timeout",
        "near",
        "store",
    )

    def __init__(
        self,
        store: Store,
        codec: Codec,
        cache: DecodeCache,
        *,
        idle_timeout: float,
        absolute_timeout: float,
        clock: Callable[[], float],
        events: Events,
        near: NearCache | None = None,
    ) -> None:
        self.store, self.codec, self.cache, self.clock = store, codec, cache, clock
        self.events, self.near = events, near
        self.idle_timeout, self.absolute_timeout = idle_timeout, absolute_timeout

    def _written(
        self, key: str | None = None, user: str | None = None
    ) -> AbstractContextManager[None]:
        """Around a write: the near cache forgets ``key`` and ``user``'s sessions once done."""
        return _UNCHANGED if self.near is None else self.near.writing(key, user)

    def _opens(self, token: str, record: Record) -> tuple[str | None, dict[str, Any]] | None:
        if record.absolute_at > record.created_at + self.absolute_timeout:
            return None  # given a longer life than this manager allows
        return self.codec.open(token, record)

    async def open(self, token: str, record: Record) -> Session | None:
        """The session of a live ``record`` not in the cache (then kept there), or ``None``.

        A record sealed under an older secret is rewritten under the newest,
        conditional on its version (a concurrent change wins); once, since the
        result is current.
        """
        opened = self._opens(token, record)
        if opened is None:
            return None
        user_id, data = opened
        session = Session(
            record.key,
            user_id,
            freeze(data),
            record.version,
            record.created_at,
            record.expires_at,
            record.absolute_at,
        )
        if self.codec.is_current(record, user_id):
            self.cache.put(record, session)
        else:
            resealed = self.codec.reseal(token, record, user_id, data)
            with fail_closed:
                await self.store.replace(resealed, expected_version=record.version)
        return session

    async def find(self, key: str, token: str) -> Found | None:
        """The live session of ``token`` (store key ``key``), opened, without renewing it."""
        now = self.clock()
        with fail_closed:
            record = await self.store.get(key)
        if record is None or not live(record, now):
            return None
        opened = self._opens(token, record)
        return None if opened is None else Found(token, record, now, *opened)

    def successor(self, found: Found, token: str, data: Any, version: int) -> Record:
        """The record of ``found``'s session under ``token`` with ``data``, active now.

        Sealed and referenced under the newest secret: a store moves the
        record's index entry when it writes it.
        """
        old = found.record
        expires = min(found.now + self.idle_timeout, old.absolute_at)
        key = old.key if token == found.token else None  # the same token: its key is known
        return self.codec.record(
            token, found.user_id, data, version, old.created_at, expires, old.absolute_at, key=key
        )

    async def create(self, token: str, user_id: str | None, data: Any, limit: int | None) -> None:
        """Write a new session for ``token``; with ``limit``, end the user's oldest beyond it."""
        now = self.clock()
        absolute = now + self.absolute_timeout
        expires = min(now + self.idle_timeout, absolute)
        record = self.codec.record(token, user_id, data, 1, now, expires, absolute)
        with fail_closed:
            await self.store.insert(record)
        self.events.emit("created", session_id=record.key, user_id=user_id, occurred=now)
        if limit is not None and user_id is not None:
            await self.trim(user_id, record.key, now, limit)

    async def revoke(self, key: str, token: str) -> bool:
        """End the session of ``token`` (store key ``key``); ``True`` if it existed."""
        found = await self.find(key, token) if "revoked" in self.events.wanted else None
        self.cache.drop(key)
        with fail_closed, self._written(key):
            ended = await self.store.delete(key)
        if ended:  # its user is known when someone wants to hear of it and it was live
            user_id = None if found is None else found.user_id
            self.events.emit("revoked", session_id=key, user_id=user_id)
        return ended

    async def end(self, session_id: object, user_id: str) -> bool:
        """End the live session ``session_id`` if it is one of ``user_id``'s."""
        if type(session_id) is not str or not _SESSION_ID.fullmatch(session_id):
            return False
        with fail_closed:
            record = await self.store.get(session_id)
            if record is None or not live(record, self.clock()):
                return False
            if not record.user_ref or record.user_ref not in self.codec.user_refs(user_id):
                return False
            self.cache.drop(session_id)
            with self._written(session_id):
                ended = await self.store.delete(session_id)
        if ended:
            self.events.emit("revoked", session_id=session_id, user_id=user_id)
        return ended

    async def end_user(self, user_id: str, keep: str | None) -> int:
        """End every session of ``user_id`` under every reference but ``keep``'s; the count."""
        with fail_closed, self._written(user=user_id):
            count = sum(
                [
                    await self.store.delete_user(ref, keep=keep)
                    for ref in self.codec.user_refs(user_id)
                ]
            )
        self.events.emit("revoked_all", user_id=user_id, count=count)
        return count

    async def infos(self, user_id: str) -> list[SessionInfo]:
        """The live sessions of ``user_id``, oldest first, as :class:`SessionInfo`."""
        return [
            SessionInfo(r.key, r.version, r.created_at, r.expires_at, r.absolute_at)
            for r in await self.of_user(user_id, self.clock())
        ]

    async def of_user(self, user_id: str, now: float) -> list[Record]:
        """The live records of ``user_id`` under every reference, oldest first."""
        with fail_closed:
            records = {
                r.key: r
                for ref in self.codec.user_refs(user_id)
                for r in await self.store.list_user(ref)
                if live(r, now)
            }
        return sorted(records.values(), key=lambda r: r.created_at)

    async def trim(self, user_id: str, new_key: str, now: float, limit: int) -> None:
        """End the oldest live sessions of ``user_id`` but ``new_key`` beyond ``limit`` - 1."""
        older = [r for r in await self.of_user(user_id, now) if r.key != new_key]
        with fail_closed, self._written(user=user_id):
            for record in older[: max(0, len(older) + 1 - limit)]:
                self.cache.drop(record.key)
                if await self.store.delete(record.key):
                    self.events.emit("revoked", session_id=record.key, user_id=user_id)

    async def rotate(self, key: str, token: str) -> str | None:
        """Move the session of ``token`` to a new token (see ``SessionManager.rotate``)."""
        found = None
        for _ in range(RETRIES):
            found = await self.find(key, token)
            if found is None:
                return None
            new = new_token()
            version = found.record.version
            rotated = self.successor(found, new, found.data, version)
            self.cache.drop(key)
            with fail_closed, self._written(key):
                await self.store.insert(rotated)
                if await self.store.delete(key, expected_version=version):
                    self.events.wrote(rotated.key, found.now)
                    self.events.emit(
                        "rotated", session_id=rotated.key, previous_id=key, user_id=found.user_id
                    )
                    return new
                await self.store.delete(rotated.key)  # changed or ended meanwhile: read again
        assert found is not None
        raise SessionConflict(found.record.version, found.record.version, attempts=RETRIES)

    async def update(self, key: str, token: str, data: Any, version: int | None) -> bool:
        """Replace the data of the session of ``token`` (see ``SessionManager.update``)."""
        current = 0
        for _ in range(RETRIES):
            found = await self.find(key, token)
            if found is None:
                return False
            current = found.record.version
            if version is not None and current != version:
                raise SessionConflict(version, current)
            new = self.successor(found, token, data, current + 1)
            with fail_closed, self._written(key):
                if await self.store.replace(new, expected_version=current):
                    self.events.wrote(key, found.now)
                    self.events.emit("updated", session_id=key, user_id=found.user_id)
                    return True
            if version is not None:
                now = await self.find(key, token)
                raise SessionConflict(version, None if now is None else now.record.version)
        raise SessionConflict(current, current, attempts=RETRIES)
