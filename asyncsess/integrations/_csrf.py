"""Cross-site request forgery defence for cookie-authenticated requests.

Every unsafe request (POST, PUT, PATCH, DELETE...) that is not
bearer-authenticated goes through :func:`csrf_verdict`, whether or not it
carries a session cookie, so a forged *login* is refused too:

1. an ``Origin`` listed in ``trusted_origins`` passes;
2. ``Sec-Fetch-Site: cross-site`` is refused;
3. an ``Origin`` other than the request's own (``null`` included) is refused;
4. ``Sec-Fetch-Site: same-origin`` or ``none`` (typed by the user), or a
   matching ``Origin``, passes;
5. a request with neither header (an old browser, or not a browser) passes
   when it carries no session cookie (there is nothing to ride on) and
   otherwise must carry the session's synchronizer token, as the
   ``csrf_token`` form field or the ``X-CSRF-Token`` header.

The synchronizer token is derived from the session token (an HMAC keyed
with it): it needs no storage, changes whenever the session token does
(login, rotation) and reveals nothing about the session token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError

__all__ = ["CsrfSettings", "Verdict", "csrf_token_for", "csrf_verdict", "token_matches"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: "pass", "refuse" (with the reason), or "token": the synchronizer token decides.
Verdict = tuple[Literal["pass", "refuse", "token"], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class CsrfSettings:
    """CSRF checking, on by default for every unsafe request that is not bearer-authenticated.

    ``trusted_origins``: other origins (``"https://app.example.com"``) whose
    pages may post to this app. ``field`` and ``header`` name where the
    synchronizer token is read from. ``enabled=False`` turns the check off
    (only for an app whose cookies are never sent cross-site by other means).
    """

    enabled: bool = True
    trusted_origins: frozenset[str] = field(default_factory=frozenset)
    field: str = "csrf_token"
    header: str = "X-CSRF-Token"

    def __post_init__(self) -> None:
        origins = frozenset(self.trusted_origins)
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ConfigurationError(
                    f"trusted origin {origin!r} must be scheme://host[:port], without a path"
                )
        object.__setattr__(self, "trusted_origins", frozenset(o.lower() for o in origins))


def csrf_token_for(session_token: str) -> str:
    """The synchronizer token of the session whose token is ``session_token``."""
    mac = hmac.new(session_token.encode(), b"asyncsess csrf v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_matches(session_token: str | None, sent: str | None) -> bool:
    """Whether ``sent`` is the synchronizer token of ``session_token`` (constant time)."""
    if not session_token or not sent:
        return False
    return hmac.compare_digest(csrf_token_for(session_token).encode(), sent.encode())


def csrf_verdict(
    settings: CsrfSettings,
    *,
    method: str,
    headers: Mapping[str, str],
    own_origin: str,
    has_cookie: bool,
) -> Verdict:
    """Judge one request by its method and headers (see the module's rules).

    ``headers`` must look names up case-insensitively (both frameworks' do).
    ``own_origin`` is ``scheme://host[:port]`` as the browser saw the app.
    """
    if not settings.enabled or method.upper() in SAFE_METHODS:
        return "pass", ""
    origin = headers.get("origin")
    site = (headers.get("sec-fetch-site") or "").lower()
    if origin is not None and origin.lower() in settings.trusted_origins:
        return "pass", ""
    if site == "cross-site":
        return "refuse", "cross-site request"
    if origin is not None:
        if origin.lower() != own_origin.lower():
            return "refuse", "the Origin is not this site's"
        return "pass", ""
    if site in ("same-origin", "none"):
        return "pass", ""
    if not has_cookie:
        return "pass", ""
    return "token", "no Origin or Sec-Fetch-Site: a csrf_token is required"
