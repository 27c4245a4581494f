"""One request's session, free of any web framework: the core both integrations share.

An integration builds a :class:`SessionContext` per request with
:meth:`SessionContext.from_request` (no I/O), asks it for the CSRF verdict
(:meth:`~SessionContext.csrf`), hands it to the application, then calls
:meth:`~SessionContext.commit` before the response starts and adds the
headers :meth:`~SessionContext.response_headers` gives.

The session is loaded lazily: nothing touches the store until the
application asks for the session (:meth:`~SessionContext.load`), so a
public page keeps answering with the store down. A write happens at most
once, at the end, and only if the data changed; a request without a
session creates an anonymous one (user ``None``) only when it writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..exceptions import SessionConflict
from ..manager import SessionManager
from ..session import Session
from ._common import (
    CookieSettings,
    Lifetime,
    no_store,
    read_bearer,
)
from ._csrf import CsrfSettings, Verdict, csrf_token_for, csrf_verdict, token_matches
from ._request_session import RequestSession, thaw

__all__ = ["ConflictPolicy", "Refusal", "SessionConfig", "SessionContext"]

ConflictPolicy = Literal["win", "fail"]
TokenSource = Literal["cookie", "bearer"]
#: Session data key marking a login that chose a browser-session cookie (``remember=False``).
BROWSER_KEY = "_asyncsess_browser"
#: Session data key holding the flash messages not shown yet.
FLASH_KEY = "_flashes"
_MERGE_ATTEMPTS = 8
# A validate that renews a session moves its expiry to "now + idle_timeout", "now" read
# after this module's own reading; the slack only absorbs float rounding.
_MOVED_SLACK = 1e-5


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Everything an integration's middleware can be told (every field has a safe default).

    ``on_conflict``: when another request changed the same session meanwhile,
    keys only one of them touched are merged; for a key both changed,
    ``"win"`` (the default) keeps this request's value and ``"fail"`` raises
    :class:`~asyncsess.SessionConflict` (a 409). ``reauthenticate``: "log out
    other devices" and "log out that device" require the password again
    (ASVS 3.3.4). ``retry_after``: seconds announced in the 503 sent while the
    store is unavailable.
    """

    cookie: CookieSettings = field(default_factory=CookieSettings)
    csrf: CsrfSettings = field(default_factory=CsrfSettings)
    bearer: bool = True
    on_conflict: ConflictPolicy = "win"
    reauthenticate: bool = False
    retry_after: float = 5.0


class Refusal(Exception):
    """An HTTP refusal raised by the core; each integration turns it into its framework's error."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


class SessionContext:
    """One request's token, its lazily loaded session and the cookies to send back."""

    __slots__ = (
        "config",
        "device",
        "https",
        "manager",
        "origin",
        "session",
        "set_cookies",
        "sets_token",
        "source",
        "token",
    )

    def __init__(
        self,
        manager: SessionManager,
        config: SessionConfig,
        *,
        token: str | None,
        source: TokenSource | None,
        https: bool,
        origin: str,
        device: str | None = None,
    ) -> None:
        self.manager = manager
        self.config = config
        self.token = token
        self.source = source
        self.https = https
        #: ``scheme://host[:port]`` as the browser saw this app.
        self.origin = origin
        self.device = device
        #: The request's session data; usable once :meth:`load` has run.
        self.session = RequestSession()
        #: ``Set-Cookie`` values the integration adds to the response.
        self.set_cookies: list[str] = []
        self.sets_token = False

    def __repr__(self) -> str:
        return f"<SessionContext source={self.source} loaded={self.loaded}>"

    @property
    def loaded(self) -> bool:
        """Whether the session has been loaded (validated) in this request."""
        return self.session.loaded

    @classmethod
    def from_request(
        cls,
        manager: SessionManager,
        config: SessionConfig,
        *,
        scheme: str,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
    ) -> SessionContext:
        """Read the token (bearer first, then the cookie); no I/O happens here.

        ``headers`` must look names up case-insensitively.
        """
        cookie = config.cookie
        https = cookie.is_https(scheme, headers.get("x-forwarded-proto"))
        token = read_bearer(headers.get("authorization")) if config.bearer else None
        source: TokenSource | None = "bearer" if token else None
        if token is None and (token := cookies.get(cookie.cookie_name) or None):
            source = "cookie"
        origin = f"{'https' if https else 'http'}://{headers.get('host', '')}"
        device = cookies.get(cookie.device_cookie_name)
        return cls(
            manager, config, token=token, source=source, https=https, origin=origin, device=device
        )

    # -- CSRF --------------------------------------------------------------

    def csrf(self, method: str, headers: Mapping[str, str]) -> Verdict:
        """The CSRF verdict for this request (bearer-authenticated requests are exempt)."""
        if self.source == "bearer":
            return "pass", ""
        return csrf_verdict(
            self.config.csrf,
            method=method,
            headers=headers,
            own_origin=self.origin,
            has_cookie=self.source == "cookie",
        )

    def csrf_token(self) -> str:
        """The synchronizer token for forms and ``X-CSRF-Token`` (empty without a session)."""
        return csrf_token_for(self.token) if self.token and self.source == "cookie" else ""

    def csrf_token_matches(self, sent: str | None) -> bool:
        """Whether ``sent`` is this request's synchronizer token."""
        return self.source == "cookie" and token_matches(self.token, sent)

    # -- loading and writing back -----------------------------------------

    async def load(self) -> RequestSession:
        """Validate the token once (first call only) and return the session's data mapping.

        A cookie that no longer validates is cleared; a renewal re-sends the
        cookie so its ``Max-Age`` follows the session. Raises
        :class:`~asyncsess.StoreUnavailable` when the store is down (fail closed).
        """
        if self.loaded:
            return self.session
        record: Session | None = None
        if self.token is not None:
            before = self.manager.now()
            record = await self.manager.validate(self.token)
            if record is None:
                if self.source == "cookie":
                    self.set_cookies.append(self.config.cookie.header("", 0))
                self.token = self.source = None
            elif self.source == "cookie" and self._lifetime(record) == "idle":
                moved = record.expires >= before + self.manager.idle_timeout - _MOVED_SLACK
                if moved:
                    self._queue(record)
        self.session.reset(record)
        return self.session

    async def record(self) -> Session | None:
        """The validated session (``None`` if none); loads it first."""
        return (await self.load()).record

    async def commit(self) -> None:
        """Write the session back if the request changed it (called before the response).

        No session yet: the first write creates an anonymous one. A concurrent
        change is merged key by key; see :class:`SessionConfig` for a key both
        changed. A session ended meanwhile is not brought back.
        """
        if not self.loaded:
            return
        rs = self.session
        changed, removed = rs.changes()
        if not changed and not removed:
            return
        if rs.record is None or self.token is None:
            token = await self.manager.create(None, rs.data())
            await self.adopt(token, revoke_old=False)
            return
        data, version = rs.data(), rs.record.version
        for _ in range(_MERGE_ATTEMPTS):
            try:
                if not await self.manager.update(self.token, data, version=version):
                    break
                return
            except SessionConflict:
                fresh = await self.manager.validate(self.token)
                if fresh is None:
                    break
                theirs = rs.changed_by_others(fresh.data)
                if theirs & (set(changed) | removed) and self.config.on_conflict == "fail":
                    raise
                data = thaw(fresh.data)
                data.update(changed)
                for key in removed:
                    data.pop(key, None)
                version = fresh.version
        else:
            raise SessionConflict(version, None)
        self.set_cookies.append(self.config.cookie.header("", 0))  # the session ended meanwhile

    def response_headers(self, cache_control: str | None) -> tuple[list[str], str | None]:
        """The ``Set-Cookie`` values to add, and a ``Cache-Control`` to set (``None``: keep)."""
        return self.set_cookies, no_store(cache_control) if self.sets_token else None

    # -- the session cookie --------------------------------------------------

    def _lifetime(self, record: Session) -> Lifetime:
        return "browser" if record.data.get(BROWSER_KEY) else self.config.cookie.lifetime

    def _queue(self, record: Session) -> None:
        assert self.token is not None
        lifetime = self._lifetime(record)
        max_age: int | None = None
        if lifetime != "browser":
            end = record.absolute_expires
            # Once a renewal could only reach the absolute expiry, run the cookie to it now.
            if lifetime == "idle" and end - record.expires >= self.manager.idle_timeout:
                end = record.expires
            max_age = max(0, math.ceil(end - self.manager.now()))
        self.set_cookies.append(self.config.cookie.header(self.token, max_age))
        self.sets_token = True

    async def adopt(self, token: str, *, revoke_old: bool = True) -> Session | None:
        """Make ``token`` the request's session and queue its cookie; end the old one's token."""
        old = self.token if self.source == "cookie" else None
        record = await self.manager.validate(token)
        if revoke_old and old is not None and old != token:
            await self.manager.revoke(old)  # no fixation: the pre-login token dies
        self.token, self.source = token, "cookie"
        self._drop_session_cookies()
        self.session.reset(record)
        if record is not None:
            self._queue(record)
        return record

    def _drop_session_cookies(self) -> None:
        prefix = self.config.cookie.cookie_name + "="
        self.set_cookies = [c for c in self.set_cookies if not c.startswith(prefix)]

    def retoken(self, token: str) -> None:
        """The session moved to ``token`` (a rotation): queue the new cookie (cookie clients)."""
        self.token = token
        if self.source == "cookie" and self.session.record is not None:
            self._drop_session_cookies()
            self._queue(self.session.record)

    def forget(self) -> str | None:
        """Drop the request's session and queue the cookie's deletion; return the old token."""
        token = self.token
        self.token = self.source = None
        self.session.reset(None)
        self._drop_session_cookies()
        self.set_cookies.append(self.config.cookie.header("", 0))
        self.sets_token = False
        return token

    def add_cookie(self, name: str, value: str, max_age: int) -> None:
        """Queue another cookie with the session cookie's attributes (the device cookie)."""
        self.set_cookies.append(self.config.cookie.header(value, max_age, name=name))
