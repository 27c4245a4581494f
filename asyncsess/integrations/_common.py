"""The cookie and bearer rules both HTTP integrations share, free of any web framework.

An integration reads the request's scheme, ``Cookie`` and ``Authorization``
headers, builds one :class:`SessionContext` per request with
:meth:`SessionContext.load` (one validate), hands it to the application, and
finally writes the ``Set-Cookie`` header the context asks for
(:attr:`SessionContext.set_cookie`), if any.

When the request came with a cookie and the validate renewed the session
(sliding expiry), the context re-sends the cookie so its ``Max-Age`` follows
the session. A session whose data the application changes itself with
``SessionManager.update`` keeps the cookie it has until the next renewal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import ConfigurationError, LoginThrottled
from ..manager import SessionManager
from ..session import Session

__all__ = ["CookieSettings", "Lifetime", "SameSite", "SessionContext", "retry_after"]

SameSite = Literal["lax", "strict", "none"]
Lifetime = Literal["idle", "absolute", "browser"]
TokenSource = Literal["cookie", "bearer"]

_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_ATTRIBUTE = re.compile(r"[^\x00-\x1f\x7f;,]*")
# A validate that renews a session moves its expiry to "now + idle_timeout", with
# "now" read from the manager's clock after the middleware's own reading: so the
# expiry moved during this request exactly when it is at least the middleware's
# reading plus the idle timeout. The slack only absorbs float rounding.
_MOVED_SLACK = 1e-5


@dataclass(frozen=True, slots=True, kw_only=True)
class CookieSettings:
    """How the session cookie is named, scoped and timed (every field has a safe default).

    ``name``: ``None`` picks ``__Host-session`` for HTTPS requests (browsers
    then insist on ``Secure``, ``Path=/`` and no ``Domain``; with a ``domain``
    it is ``__Secure-session``) and ``session`` for plain HTTP.
    ``secure``: ``None`` sets ``Secure`` exactly when the request is HTTPS
    (always for a ``__Host-``/``__Secure-`` name or ``samesite="none"``).
    ``lifetime`` decides ``Max-Age``: ``"idle"`` runs it to the session's
    sliding idle expiry and re-sends the cookie whenever a validate renews the
    session (near the end it runs to the absolute expiry, which renewal cannot
    pass); ``"absolute"`` runs it to the absolute expiry, set once at login;
    ``"browser"`` sends none, so the browser drops the cookie when it closes.
    The server enforces both timeouts whatever the cookie says.
    ``trust_forwarded``: read ``X-Forwarded-Proto`` to tell HTTPS; turn it on
    only behind a proxy you run that overwrites that header.
    """

    name: str | None = None
    secure: bool | None = None
    httponly: bool = True
    samesite: SameSite = "lax"
    path: str = "/"
    domain: str | None = None
    lifetime: Lifetime = "idle"
    trust_forwarded: bool = False

    def __post_init__(self) -> None:
        if self.name is not None and not _TOKEN_CHARS.fullmatch(self.name):
            raise ConfigurationError(f"cookie name {self.name!r} has characters a cookie forbids")
        if self.samesite not in ("lax", "strict", "none"):
            raise ConfigurationError(f"samesite must be lax, strict or none, not {self.samesite!r}")
        if self.lifetime not in ("idle", "absolute", "browser"):
            raise ConfigurationError(
                f"lifetime must be idle, absolute or browser, not {self.lifetime!r}"
            )
        if not self.path.startswith("/") or not _ATTRIBUTE.fullmatch(self.path):
            raise ConfigurationError(f"cookie path must be an absolute path, not {self.path!r}")
        if self.domain is not None and not (self.domain and _ATTRIBUTE.fullmatch(self.domain)):
            raise ConfigurationError(f"cookie domain {self.domain!r} is not a domain")
        prefixed = self.name is not None and self.name.startswith(("__Host-", "__Secure-"))
        if self.secure is False and (prefixed or self.samesite == "none"):
            raise ConfigurationError(
                "a __Host-/__Secure- cookie name and samesite='none' need secure=True or None"
            )
        host = self.name is not None and self.name.startswith("__Host-")
        if host and (self.path != "/" or self.domain is not None):
            raise ConfigurationError("a __Host- cookie needs path='/' and no domain")

    def is_https(self, scheme: str, forwarded_proto: str | None) -> bool:
        """Tell whether the request reached the client over TLS."""
        if self.trust_forwarded and forwarded_proto:
            return forwarded_proto.split(",", 1)[0].strip().lower() == "https"
        return scheme.lower() in ("https", "wss")

    def name_for(self, https: bool) -> str:
        """The cookie's name for a request over HTTPS (``https=True``) or plain HTTP."""
        if self.name is not None:
            return self.name
        if not https:
            return "session"
        return "__Secure-session" if self.domain is not None else "__Host-session"

    def secure_for(self, https: bool) -> bool:
        """Whether the cookie carries ``Secure`` for such a request."""
        if self.secure is not None:
            return self.secure
        return https or self.samesite == "none" or self.name_for(https).startswith("__")

    def header(self, https: bool, value: str, max_age: int | None) -> str:
        """Render a ``Set-Cookie`` header value (``max_age=0`` deletes the cookie)."""
        parts = [f"{self.name_for(https)}={value}"]
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        parts += [f"Path={self.path}", f"SameSite={self.samesite.capitalize()}"]
        if self.secure_for(https):
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        return "; ".join(parts)


def read_bearer(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header, if any."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def retry_after(exc: LoginThrottled) -> dict[str, str]:
    """The ``Retry-After`` header for a 429 answer to a throttled login."""
    return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}


class SessionContext:
    """One request's session: the token it came with, its session, the cookie to send back.

    ``token`` and ``session`` are the request's current ones (``None`` when
    anonymous); ``source`` tells where the token was read from. The helpers
    :meth:`start`, :meth:`login` and :meth:`logout` change them and queue the
    matching ``Set-Cookie`` in :attr:`set_cookie`.
    """

    __slots__ = ("https", "manager", "session", "set_cookie", "settings", "source", "token")

    def __init__(
        self,
        manager: SessionManager,
        settings: CookieSettings,
        *,
        https: bool,
        token: str | None = None,
        source: TokenSource | None = None,
    ) -> None:
        self.manager = manager
        self.settings = settings
        self.https = https
        self.token = token
        self.source = source
        self.session: Session | None = None
        #: The ``Set-Cookie`` value the integration must add to the response, if any.
        self.set_cookie: str | None = None

    def __repr__(self) -> str:
        user = None if self.session is None else self.session.user_id
        return f"<SessionContext user={user!r} source={self.source}>"

    @classmethod
    async def load(
        cls,
        manager: SessionManager,
        settings: CookieSettings,
        *,
        https: bool,
        cookies: Mapping[str, str],
        authorization: str | None,
        bearer: bool,
    ) -> SessionContext:
        """Read the request's token (bearer first, then the cookie) and validate it once."""
        token = read_bearer(authorization) if bearer else None
        source: TokenSource | None = "bearer" if token else None
        if token is None and (token := cookies.get(settings.name_for(https))):
            source = "cookie"
        ctx = cls(manager, settings, https=https, token=token, source=source)
        if token is not None:
            before = manager.now()
            ctx.session = session = await manager.validate(token)
            renewed = (
                session is not None
                and session.expires >= before + manager.idle_timeout - _MOVED_SLACK
            )
            if renewed and source == "cookie" and settings.lifetime == "idle":
                ctx._queue(token, session)
        return ctx

    def _queue(self, token: str, session: Session | None) -> None:
        self.set_cookie = self.settings.header(self.https, token, self._max_age(session))

    def _max_age(self, session: Session | None) -> int | None:
        lifetime = self.settings.lifetime
        if session is None:
            return 0
        if lifetime == "browser":
            return None
        end = session.absolute_expires
        idle_end = session.expires
        # Once a renewal could only reach the absolute expiry, run the cookie to it now.
        if lifetime == "idle" and end - idle_end >= self.manager.idle_timeout:
            end = idle_end
        return max(0, math.ceil(end - self.manager.now()))

    async def start(self, token: str) -> Session | None:
        """Adopt the fresh ``token``: revoke the request's previous session, queue the cookie."""
        old = self.token
        session = await self.manager.validate(token)
        if old is not None and old != token:
            await self.manager.revoke(old)  # no fixation: the pre-login token dies
        self.token, self.session, self.source = token, session, "cookie"
        self._queue(token, session)
        return session

    async def create(self, user_id: str, data: Mapping[str, Any] | None = None) -> str:
        """Start a session for ``user_id`` (authenticated by the application) and adopt it."""
        token = await self.manager.create(user_id, data)
        await self.start(token)
        return token

    async def login(self, username: str, password: str, client: str | None) -> str | None:
        """Log in through ``SessionManager.login`` and adopt the new token; ``None`` if refused.

        Raises :class:`~asyncsess.LoginThrottled` when the attempt is rate limited.
        """
        token = await self.manager.login(username, password, client=client)
        if token is None:
            return None
        await self.start(token)
        return token

    async def logout_others(self) -> int:
        """Revoke every other session of the request's user; return how many ended."""
        if self.session is None:
            return 0
        return await self.manager.revoke_all(self.session.user_id, keep=self.token)

    async def logout(self) -> bool:
        """Revoke the request's session and queue a cookie that deletes the browser's copy."""
        token, self.token, self.session, self.source = self.token, None, None, None
        self.set_cookie = self.settings.header(self.https, "", 0)
        return await self.manager.revoke(token) if token is not None else False
