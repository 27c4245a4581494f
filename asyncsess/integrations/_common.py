"""Cookies and request facts both HTTP integrations share, free of any web framework.

The session cookie is ``Secure`` and named ``__Host-session`` by default,
whatever the request's scheme: browsers accept such cookies from
``http://localhost`` and ``http://127.0.0.1`` too, so development needs no
change, and behind a TLS-terminating proxy the cookie never goes out
without ``Secure``. ``CookieSettings(secure=False)`` is the explicit
development opt-out (plain ``session`` name); it logs a warning.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Literal

from ..exceptions import ConfigurationError, LoginThrottled

__all__ = ["CookieSettings", "Lifetime", "SameSite", "no_store", "read_bearer", "retry_after"]

log = logging.getLogger("asyncsess")

SameSite = Literal["lax", "strict", "none"]
Lifetime = Literal["idle", "absolute", "browser"]

_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_ATTRIBUTE = re.compile(r"[^\x00-\x1f\x7f;,]*")
#: How long the device cookie (the login limiter's "known device" proof) is kept.
DEVICE_COOKIE_MAX_AGE = 400 * 86400  # the longest lifetime browsers honour


@dataclass(frozen=True, slots=True, kw_only=True)
class CookieSettings:
    """How the session cookie is named, scoped and timed (every field has a safe default).

    ``secure`` (default ``True``) sends ``Secure`` on every request, and the
    default ``name`` is then ``__Host-session`` (``__Secure-session`` with a
    ``domain``). ``secure=False`` is for development over plain HTTP on a
    host other than localhost; it names the cookie ``session`` and logs a
    warning.
    ``lifetime`` decides ``Max-Age``: ``"idle"`` runs it to the session's
    sliding idle expiry and re-sends the cookie whenever a request renews the
    session; ``"absolute"`` runs it to the absolute expiry, set once at login;
    ``"browser"`` sends none, so the browser drops the cookie when it closes.
    A login can choose per user (``remember=False`` means ``"browser"``).
    The server enforces both timeouts whatever the cookie says.
    ``trust_forwarded``: tell HTTPS from the *rightmost* ``X-Forwarded-Proto``
    value (the one your proxy appended); turn it on only behind a proxy you run.
    """

    name: str | None = None
    secure: bool = True
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
        if not self.secure and (prefixed or self.samesite == "none"):
            raise ConfigurationError(
                "a __Host-/__Secure- cookie name and samesite='none' need secure=True"
            )
        if self.cookie_name.startswith("__Host-") and (self.path != "/" or self.domain):
            raise ConfigurationError("a __Host- cookie needs path='/' and no domain")
        if not self.secure:
            log.warning(
                "asyncsess: session cookies without Secure (CookieSettings(secure=False)) are "
                "for development only; browsers accept Secure cookies on http://localhost"
            )

    @property
    def cookie_name(self) -> str:
        """The session cookie's name."""
        return self._prefixed(self.name, "session")

    @property
    def device_cookie_name(self) -> str:
        """The name of the cookie that remembers a device a user logged in from."""
        return self._prefixed(None, "device")

    def _prefixed(self, name: str | None, base: str) -> str:
        if name is not None:
            return name
        if not self.secure:
            return base
        return f"__Secure-{base}" if self.domain else f"__Host-{base}"

    def is_https(self, scheme: str, forwarded_proto: str | None) -> bool:
        """Tell whether the request reached the client over TLS.

        With ``trust_forwarded``, the last ``X-Forwarded-Proto`` value decides:
        proxies append theirs, so earlier ones may be the client's own.
        """
        if self.trust_forwarded and forwarded_proto:
            return forwarded_proto.rsplit(",", 1)[-1].strip().lower() == "https"
        return scheme.lower() in ("https", "wss")

    def header(self, value: str, max_age: int | None, *, name: str | None = None) -> str:
        """Render a ``Set-Cookie`` value (``max_age=0`` deletes; ``None``: a browser cookie)."""
        parts = [f"{name or self.cookie_name}={value}"]
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        parts += [f"Path={self.path}", f"SameSite={self.samesite.capitalize()}"]
        if self.secure:
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


def retry_after(seconds: float) -> dict[str, str]:
    """A ``Retry-After`` header for ``seconds`` (at least 1)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def throttled_status(exc: LoginThrottled) -> int:
    """429 for a throttled username, client or device; 503 when the server is busy hashing."""
    return 503 if exc.scope == "busy" else 429


def no_store(cache_control: str | None) -> str | None:
    """The ``Cache-Control`` a response setting a token must carry, or ``None`` to keep it.

    A response that is already ``no-store`` or ``private`` keeps its header;
    any other (``public``, ``max-age``...) becomes ``no-store``, so no shared
    cache hands one user's token to another.
    """
    directives = {d.strip().split("=", 1)[0].lower() for d in (cache_control or "").split(",")}
    return None if directives & {"no-store", "private"} else "no-store"
