"""``get_session_adapter(kind, config)``: the older multi-backend adapter's API, async.

A thin layer over :class:`asyncsess.SessionManager`: the older configuration
keys are translated by :func:`asyncsess.config.settings_from_mapping`, and
each call is one manager call.

=========================  ==================================================
kind                       keys (besides ``session_expiry_minutes``,
                           ``privacy_mode``, ``encryption_key``)
=========================  ==================================================
``"memory"``               none
``"file"``                 ``storage_dir`` (default ``~/.sessions``)
``"redis"``                ``redis_host`` (``localhost``), ``redis_port``
                           (6379), ``redis_db`` (0), ``redis_password``
``"mongo"``                ``connection_string`` (``mongodb://localhost:27017/``),
                           ``db_name`` (``session_db``), ``collection_name``
                           (``sessions``)
``"sql"``                  ``db_url`` (``sqlite+aiosqlite:///sessions.db``;
                           bare ``sqlite://``, ``postgresql://``, ``mysql://``
                           get their async driver)
=========================  ==================================================

``session_expiry_minutes`` (default 60) is a sliding idle timeout; every
session also ends 24 hours (or ``session_expiry_minutes``, if longer) after
it was created. In privacy mode (the default) sessions are encrypted at rest,
so Redis, MongoDB and SQL need an ``encryption_key`` (at least 32
characters); the file store keeps a key file of its own in ``storage_dir``
when none is given; memory keeps nothing at rest. A key of another kind, or
one no kind knows, is a :class:`~asyncsess.ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..config import settings_from_mapping
from ..exceptions import ConfigurationError
from ..manager import SessionManager
from ..session import thaw
from .sqlalchemy_manager import check_sql_url

__all__ = ["INVALID", "KINDS", "VALID", "SessionAdapter", "get_session_adapter"]

#: The message of a valid session.
VALID: Final = "Session valid"
#: The message of anything else: unknown, malformed, expired, deleted.
INVALID: Final = "Invalid or expired session"

_COMMON: Final = frozenset({"session_expiry_minutes", "privacy_mode", "encryption_key"})
#: Each kind's own keys, with their defaults (one of which selects the store).
KINDS: Final[Mapping[str, Mapping[str, object]]] = {
    "memory": {},
    "file": {"storage_dir": "~/.sessions"},
    "redis": {"redis_host": "localhost", "redis_port": 6379, "redis_db": 0, "redis_password": None},
    "mongo": {
        "connection_string": "mongodb://localhost:27017/",
        "db_name": "session_db",
        "collection_name": "sessions",
    },
    "sql": {"db_url": "sqlite+aiosqlite:///sessions.db"},
}
_AT_REST: Final = frozenset({"redis", "mongo", "sql"})  # sealed only with a key we are given
_MIN_ABSOLUTE: Final = timedelta(hours=24)


def _check_keys(kind: str, config: Mapping[str, Any]) -> None:
    for key in config:
        if key in _COMMON or key in KINDS[kind]:
            continue
        owner = next((k for k, keys in KINDS.items() if key in keys), None)
        if owner is not None:
            raise ConfigurationError(f"{key!r} is a setting of kind {owner!r}, not {kind!r}")
        known = ", ".join(sorted({*_COMMON, *KINDS[kind]}))
        raise ConfigurationError(f"unknown setting {key!r} for kind {kind!r}; known: {known}")


def _split_collection(url: str) -> tuple[str, str]:
    """Take the ``collection`` option out of a mongodb:// URL (the driver would refuse it)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    collection = next(v for k, v in query if k == "collection")
    rest = urlencode([(k, v) for k, v in query if k != "collection"])
    return urlunsplit(parts._replace(query=rest)), collection


class SessionAdapter:
    """The older adapter's calls over a :class:`~asyncsess.SessionManager` (``manager``).

    Use ``async with`` (runs the expiry sweeper, then closes) or call
    :meth:`aclose`. Store failures raise :class:`~asyncsess.StoreError`
    (never a valid session).
    """

    def __init__(self, manager: SessionManager, kind: str) -> None:
        self.manager = manager
        self.kind = kind

    def __repr__(self) -> str:
        return f"SessionAdapter({self.kind!r}, {self.manager!r})"

    async def create_session(self, user_id: str, user_data: Mapping[str, Any] | None = None) -> str:
        """Start a session for ``user_id`` (a non-empty str) and return its token.

        ``user_data`` must be JSON-serialisable; a ``"user_id"`` in it must
        equal ``user_id`` (``ValueError`` otherwise).
        """
        data = dict(user_data or {})
        if data.get("user_id", user_id) != user_id:
            raise ValueError("user_data['user_id'] differs from user_id")
        data.pop("user_id", None)
        return await self.manager.create(user_id, data)

    async def validate_session(self, token: object) -> tuple[bool, str, dict[str, Any] | None]:
        """Return ``(True, VALID, user_data)`` or ``(False, INVALID, None)``.

        ``user_data`` is a new dict: the ``user_data`` the session was created
        with, plus ``"user_id"``. A valid session's idle timeout restarts.
        """
        session = await self.manager.validate(token)
        if session is None:
            return False, INVALID, None
        return True, VALID, {**thaw(session.data), "user_id": session.user_id}

    async def delete_session(self, token: object) -> bool:
        """End the session of ``token``; ``True`` if it existed."""
        return await self.manager.revoke(token)

    async def clear_all_sessions(self) -> int:
        """Delete every session in the store (the privacy wipe); return the count."""
        return await self.manager.wipe()

    async def aclose(self) -> None:
        """Close the store's connections (or files)."""
        await self.manager.aclose()

    async def __aenter__(self) -> Self:
        await self.manager.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.manager.__aexit__(exc_type, exc, tb)


def get_session_adapter(
    kind: str,
    config: Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> SessionAdapter:
    """Return a :class:`SessionAdapter` for ``kind`` configured by the older keys.

    ``clock`` (seconds since the epoch) and ``store_options`` (e.g. a Redis
    ``prefix``) go to :class:`~asyncsess.SessionManager`. Nothing connects
    until the first call.
    """
    if kind not in KINDS:
        raise ConfigurationError(f"unknown session kind {kind!r}; kinds: {', '.join(KINDS)}")
    given = dict(config or {})
    _check_keys(kind, given)
    defaults = {k: v for k, v in KINDS[kind].items() if v is not None}
    legacy = {"session_expiry_minutes": 60, "privacy_mode": True, **defaults, **given}
    settings = settings_from_mapping(legacy)
    if kind == "memory":
        settings["store"] = "memory://"
    elif kind == "sql":
        check_sql_url(settings["store"])
    if settings["privacy_mode"] and kind in _AT_REST and "secret" not in settings:
        raise ConfigurationError(
            f"privacy_mode encrypts {kind} sessions at rest, so it needs an encryption_key "
            '(32+ characters: python -c "import secrets; print(secrets.token_urlsafe(32))"); '
            "or set privacy_mode to False to store them in the clear"
        )
    options = dict(store_options or {})
    if kind == "mongo":
        settings["store"], collection = _split_collection(settings["store"])
        options.setdefault("collection", collection)
    absolute = max(settings["idle_timeout"], _MIN_ABSOLUTE)
    manager = SessionManager(
        **settings, absolute_timeout=absolute, clock=clock, store_options=options or None
    )
    return SessionAdapter(manager, kind)
