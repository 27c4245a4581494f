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
from typing import Any, Literal

from ..accounts.user import User
from ..exceptions import LoginThrottled, SessionConflict
from ..manager import SessionManager
from ..session import Session
from ._common import (
    DEVICE_COOKIE_MAX_AGE,
    CookieSettings,
    Lifetime,
    no_store,
    read_bearer,
    retry_after,
    throttled_status,
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
        "loaded",
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
        self.loaded = False
        #: ``Set-Cookie`` values the integration adds to the response.
        self.set_cookies: list[str] = []
        self.sets_token = False

    def __repr__(self) -> str:
        return f"<SessionContext source={self.source} loaded={self.loaded}>"

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
        self.loaded = True
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
            await self._adopt(token, revoke_old=False)
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

    # -- login, logout, rotation ------------------------------------------

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

    async def _adopt(self, token: str, *, revoke_old: bool = True) -> Session | None:
        old = self.token if self.source == "cookie" else None
        record = await self.manager.validate(token)
        if revoke_old and old is not None and old != token:
            await self.manager.revoke(old)  # no fixation: the pre-login token dies
        self.token, self.source, self.loaded = token, "cookie", True
        self._drop_session_cookies()
        self.session.reset(record)
        if record is not None:
            self._queue(record)
        return record

    def _drop_session_cookies(self) -> None:
        prefix = self.config.cookie.cookie_name + "="
        self.set_cookies = [c for c in self.set_cookies if not c.startswith(prefix)]

    async def _carry(self, remember: bool | None) -> dict[str, Any]:
        rs = await self.load()
        carried = rs.data() if rs.user_id is None else {}  # another user's data stays behind
        carried.pop(BROWSER_KEY, None)
        if remember is False and self.config.cookie.lifetime != "browser":
            carried[BROWSER_KEY] = True
        return carried

    async def login(
        self, username: str, password: str, *, client: str | None, remember: bool | None = None
    ) -> str | None:
        """Log in through ``SessionManager.login``; ``None`` if the credentials are wrong.

        The anonymous session's data is carried into the new session, whose
        new token replaces the old one (ended: no fixation). ``remember=False``
        makes the cookie a browser-session cookie; ``True`` or ``None``
        follows ``CookieSettings.lifetime``. A success also sets the device
        cookie the login limiter recognises. A throttled attempt raises
        :class:`Refusal` (429, or 503 when the server is busy) with ``Retry-After``.
        """
        carried = await self._carry(remember)
        try:
            token = await self.manager.login(
                username, password, client=client, device=self.device, data=carried
            )
        except LoginThrottled as exc:
            raise Refusal(throttled_status(exc), str(exc), retry_after(exc.retry_after)) from exc
        if token is None:
            return None
        await self._adopt(token)
        device = self.manager.device_token(username)
        name = self.config.cookie.device_cookie_name
        self.set_cookies.append(self.config.cookie.header(device, DEVICE_COOKIE_MAX_AGE, name=name))
        return token

    async def start(
        self, user_id: str, data: Mapping[str, Any] | None = None, *, remember: bool | None = None
    ) -> str:
        """Start a session for a user the application authenticated (SSO...), like :meth:`login`."""
        carried = await self._carry(remember)
        token = await self.manager.create(user_id, {**carried, **(data or {})})
        await self._adopt(token)
        return token

    async def rotate(self) -> str:
        """Give the session a new token (after a privilege change) and re-set the cookie."""
        await self.load()
        new = await self.manager.rotate(self.token) if self.token else None
        if new is None:
            raise Refusal(401, "not authenticated", {"WWW-Authenticate": "Bearer"})
        self.token = new
        self.source = "cookie"
        if self.session.record is not None:
            self._drop_session_cookies()
            self._queue(self.session.record)
        return new

    async def logout(self) -> bool:
        """End the session and delete the browser's cookie; ``True`` if a session ended."""
        token = self.token
        self.token = self.source = None
        self.loaded = True
        self.session.reset(None)
        self._drop_session_cookies()
        self.set_cookies.append(self.config.cookie.header("", 0))
        self.sets_token = False
        return await self.manager.revoke(token) if token is not None else False

    async def _user(self, password: str | None) -> str:
        record = await self.record()
        if record is None or record.user_id is None:
            raise Refusal(401, "not authenticated", {"WWW-Authenticate": "Bearer"})
        if self.config.reauthenticate and not await self._password_ok(record.user_id, password):
            raise Refusal(403, "Enter your password again to do this.")
        return record.user_id

    async def _password_ok(self, user_id: str, password: str | None) -> bool:
        accounts = self.manager.accounts
        if accounts is None or not password:
            return False
        user = await accounts.get_user_by_id(user_id)
        if user is None:
            return False
        username = user.username

        async def check() -> User | None:
            return await accounts.authenticate(username, password)

        try:  # a wrong password counts against the user's login budget, as at login
            found = await accounts.limits.guard(username, check)
        except LoginThrottled as exc:
            raise Refusal(throttled_status(exc), str(exc), retry_after(exc.retry_after)) from exc
        return found is not None

    async def logout_others(self, password: str | None = None) -> int:
        """End every other session of this user; return how many ended."""
        user_id = await self._user(password)
        return await self.manager.revoke_all(user_id, keep=self.token)

    async def logout_device(self, session_id: str, password: str | None = None) -> bool:
        """End one session of this user by its id (see ``SessionManager.sessions``)."""
        user_id = await self._user(password)
        if session_id == self.session.id:
            return await self.logout()
        ended: bool = await self.manager.revoke_session(user_id, session_id)
        return ended

    # -- flash messages -----------------------------------------------------

    async def flash(self, message: str, category: str = "info") -> None:
        """Keep ``message`` for the next page this browser shows (stored in the session)."""
        rs = await self.load()
        rs[FLASH_KEY] = [*rs.get(FLASH_KEY, []), {"message": message, "category": category}]

    async def pop_flashes(self) -> list[dict[str, str]]:
        """Return and forget the flash messages (``{"message", "category"}`` dicts)."""
        rs = await self.load()
        flashes: list[dict[str, str]] = rs.pop(FLASH_KEY, [])
        return flashes
