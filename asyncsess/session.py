"""The value objects handed to applications: :class:`Session` and :class:`SessionInfo`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Session", "SessionInfo"]


@dataclass(frozen=True, slots=True)
class Session:
    """A valid session, as returned by ``SessionManager.validate``.

    ``data`` is a read-only mapping; change it with ``SessionManager.update``,
    passing ``version`` to refuse lost updates. ``id`` identifies the session
    without being a token (it cannot be used to authenticate).
    """

    id: str
    user_id: str
    data: Mapping[str, Any]
    version: int
    created_at: datetime
    expires_at: datetime
    absolute_expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What ``SessionManager.sessions`` lists about one live session: never its token."""

    id: str
    version: int
    created_at: datetime
    expires_at: datetime
    absolute_expires_at: datetime
