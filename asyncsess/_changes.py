"""The part of :class:`~asyncsess.SessionManager`'s API that changes or ends live sessions.

A mixin the manager inherits: :meth:`Changes.update`, :meth:`Changes.rotate`,
:meth:`Changes.revoke`, and per user :meth:`Changes.sessions`,
:meth:`Changes.revoke_all` and :meth:`Changes.revoke_session`. Each checks
its arguments without I/O, opens the store and hands over to
:class:`~asyncsess._records.Records`, which does the store work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from ._codec import check_data
from ._records import Records
from ._setup import check_user
from .observe.observer import Observer, observed
from .session import SessionInfo
from .tokens import lookup_key

__all__ = ["Changes"]


class Changes:
    """Updating, rotating and ending sessions, and listing a user's."""

    _records: Records
    _observer: Observer
    _open: Callable[[], Awaitable[None]]

    @observed("revoke")
    async def revoke(self, token: object) -> bool:
        """End the session of ``token``; ``True`` if it existed.

        Raises :class:`~asyncsess.StoreUnavailable` (or another
        :class:`~asyncsess.StoreError`) when the store fails.
        """
        key = await self._key(token)
        return False if key is None else await self._records.revoke(key, cast(str, token))

    @observed("revoke_all")
    async def revoke_all(self, user_id: str, *, keep: object = None) -> int:
        """End every session of ``user_id`` (but the one of token ``keep``); return the count.

        ``user_id`` must be a non-empty ``str`` (``TypeError``, ``ValueError``).
        """
        check_user(user_id)
        await self._open()
        return await self._records.end_user(user_id, lookup_key(keep))

    @observed("revoke_session")
    async def revoke_session(self, session_id: object, *, user_id: str) -> bool:
        """End one of ``user_id``'s sessions by its id (:attr:`Session.id`, :attr:`SessionInfo.id`).

        Returns ``False`` when ``session_id`` is not the id of one of
        ``user_id``'s live sessions (another user's, an anonymous one, ended,
        or not an id at all): "log out that device", owner checked.
        ``user_id`` must be a non-empty ``str`` (``TypeError``, ``ValueError``).
        """
        check_user(user_id)
        await self._open()
        return await self._records.end(session_id, user_id)

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """List the live sessions of ``user_id``, oldest first (ids and times, no tokens).

        ``user_id`` must be a non-empty ``str`` (``TypeError``, ``ValueError``).
        """
        check_user(user_id)
        await self._open()
        return await self._records.infos(user_id)

    async def _key(self, token: object) -> str | None:
        """The store key of a well-formed ``token`` (``None`` otherwise), the store opened."""
        key = lookup_key(token)
        if key is not None:
            await self._open()
        return key

    @observed("rotate")
    async def rotate(self, token: object) -> str | None:
        """Move the session of ``token`` to a new token and end the old one.

        The session keeps its data, version, creation and absolute expiry.
        Returns ``None`` when ``token`` is not a live session. The old record
        is deleted only if it is still at the version read: a concurrent
        update is carried over (rotate reads again); if the session keeps
        changing, :class:`~asyncsess.SessionConflict` is raised.
        """
        key = await self._key(token)
        return None if key is None else await self._records.rotate(key, cast(str, token))

    @observed("update")
    async def update(
        self, token: object, data: Mapping[str, Any], *, version: int | None = None
    ) -> bool:
        """Replace the data of the session of ``token``; ``False`` if it is not live.

        With ``version``, the write happens only if the session is still at
        that version; otherwise :class:`~asyncsess.SessionConflict` is raised.
        Without it, concurrent updates are applied one after the other (after
        16 lost in a row, ``SessionConflict`` with ``attempts`` set). ``data`` is
        checked as in :meth:`create`; a session's frozen data may be passed back.
        """
        key = await self._key(token)
        if key is None:
            return False
        return await self._records.update(key, cast(str, token), check_data(data), version)
