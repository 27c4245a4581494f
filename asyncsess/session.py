"""The value objects handed to applications: :class:`Session` and :class:`SessionInfo`.

Both are immutable named tuples (cheap to build on the validate hot path).
Times are kept as POSIX timestamps (``created``, ``expires``,
``absolute_expires``) and offered as aware UTC datetimes (``created_at``,
``expires_at``, ``absolute_expires_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = ["Session", "SessionInfo"]


class Session(NamedTuple):
    """A valid session, as returned by ``SessionManager.validate``.

    ``data`` is a read-only mapping; change it with ``SessionManager.update``,
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


class SessionInfo(NamedTuple):
    """What ``SessionManager.sessions`` lists about one live session: never its token."""

    id: str
    version: int
    created: float
    expires: float
    absolute_expires: float

    @property
    def created_at(self) -> datetime:
        """When the session was created (UTC)."""
        return datetime.fromtimestamp(self.created, UTC)

    @property
    def expires_at(self) -> datetime:
        """When the session ends unless used again (UTC)."""
        return datetime.fromtimestamp(self.expires, UTC)

    @property
    def absolute_expires_at(self) -> datetime:
        """When the session ends however much it is used (UTC)."""
        return datetime.fromtimestamp(self.absolute_expires, UTC)
