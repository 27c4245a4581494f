"""The value objects handed to applications: :class:`Session`, :class:`SessionInfo`, :class:`Stats`.

Each is a frozen, slotted dataclass. Times are kept as POSIX timestamps
(``created``, ``expires``, ``absolute_expires``) and offered as aware UTC
datetimes (``created_at``, ``expires_at``, ``absolute_expires_at``).

Session data is handed out **deeply immutable**: every mapping in it, nested
or not, is a read-only mapping (:class:`types.MappingProxyType`) and every
list is a tuple. So one decoded session can be kept and handed out again to
every caller without one of them changing what the next one sees. Data goes
through JSON, so what was put in as a list comes back as a tuple (and a
tuple put in comes back as a tuple too); to change data, build a new mapping
(``{**session.data, "theme": "light"}``, ``[*session.data["cart"], 4]``) and
pass it to ``SessionManager.update``, which accepts these read-only values.
:func:`thaw` turns a session's data back into plain dicts and lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = ["Session", "SessionInfo", "Stats", "freeze", "thaw"]


def freeze(value: Any) -> Any:
    """Return the JSON value ``value`` deeply immutable: dicts read-only, lists tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple([freeze(v) for v in value])
    return value


def thaw(value: Any) -> Any:
    """Return a mutable copy of frozen data: mappings as dicts, tuples as lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


class _Times:
    __slots__ = ()
    created: float
    expires: float
    absolute_expires: float

    @property
    def created_at(self) -> datetime:
        """When the session was created (UTC)."""
        return datetime.fromtimestamp(self.created, UTC)

    @property
    def expires_at(self) -> datetime:
        """When the session ends unless used again (sliding idle expiry, UTC)."""
        return datetime.fromtimestamp(self.expires, UTC)

    @property
    def absolute_expires_at(self) -> datetime:
        """When the session ends however much it is used (UTC)."""
        return datetime.fromtimestamp(self.absolute_expires, UTC)


@dataclass(frozen=True, slots=True)
class Session(_Times):
    """A valid session, as returned by ``SessionManager.validate``.

    ``data`` is deeply immutable (see the module docstring: nested mappings
    read-only, lists as tuples); change it with ``SessionManager.update``,
    passing ``version`` to refuse lost updates. ``id`` identifies the session
    without being a token (it cannot be used to authenticate; it is what
    ``SessionManager.revoke_session`` takes). ``user_id`` is ``None`` for an
    anonymous session (``SessionManager.create(None)``).
    """

    id: str
    user_id: str | None
    data: Mapping[str, Any]
    version: int
    created: float
    expires: float
    absolute_expires: float


@dataclass(frozen=True, slots=True)
class SessionInfo(_Times):
    """What ``SessionManager.sessions`` lists about one live session: never its token."""

    id: str
    version: int
    created: float
    expires: float
    absolute_expires: float


@dataclass(frozen=True, slots=True)
class Stats:
    """What ``SessionManager.stats`` reports.

    ``live`` and ``expired`` count the store's sessions (expired ones not swept
    yet); the ``cache_*`` figures are this manager's decoded-session cache:
    sessions kept, their estimated bytes, and validates it answered (hits) or
    had to open a record for (misses) since the manager was made.

    The ``near_cache_*`` figures are the near cache's (all 0 when it is off):
    sessions kept, validates answered from process memory (hits) or sent to
    the store (misses), invalidations received from the store's channel, and
    channel resets (the channel was lost and the whole cache dropped).
    """

    live: int
    expired: int
    cache_entries: int
    cache_bytes: int
    cache_hits: int
    cache_misses: int
    near_cache_entries: int = 0
    near_cache_hits: int = 0
    near_cache_misses: int = 0
    near_cache_invalidations: int = 0
    near_cache_resets: int = 0
