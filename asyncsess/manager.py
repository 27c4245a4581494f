"""SessionManager: the public API and its lifecycle.

The policy lives here once (tokens, expiry, renewal, background tasks) with
the hot path, :meth:`SessionManager.validate`. Each other job has its module:
building the parts from the arguments in :mod:`asyncsess._setup` (settings in
:mod:`asyncsess.config`), the record format and sealing call in
:mod:`asyncsess._codec`, the writes (create, rotate, update, ending sessions)
and other record-level work in :mod:`asyncsess._records`, the decoded-session
cache in :mod:`asyncsess._cache`, the sweeper in :mod:`asyncsess._sweeper`,
batching in :mod:`asyncsess._batching`, the accounts wiring in
:mod:`asyncsess.accounts.login`, telemetry and events in :mod:`asyncsess.observe`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, cast

import anyio
from anyio.abc import TaskStatus

from ._cache import DecodeCache
from ._codec import check_data
from ._records import Records
from ._setup import batcher_for, check_user, codec_for, open_parts, store_from
from ._sweeper import run_sweeper
from ._upkeep import Upkeep
from .accounts.core import Accounts
from .accounts.login import LoginDesk, LoginMethods
from .config import check_fraction, check_size, duration, settings_from_env, settings_from_mapping
from .exceptions import AsyncsessError, fail_closed, store_failure
from .nearcache import near_cache_for
from .observe.events import Events
from .observe.observer import Observer, observed
from .observe.telemetry import Telemetry, store_kind
from .ratelimit import RateLimiter
from .sealing import normalize_secrets
from .session import Session, SessionInfo
from .stores.base import Renewal, Store
from .tokens import lookup_key, new_token

__all__ = ["SessionManager"]

log = logging.getLogger("asyncsess")

#: A coroutine function taking ``task_status`` by keyword, as ``TaskGroup.start`` wants.
BackgroundTask = Callable[..., Coroutine[Any, Any, None]]


class SessionManager(Upkeep, LoginMethods):
    """Create, validate, renew and revoke sessions on any store.

    ``store`` is a URL (``memory://``, ``file:///path``, ``redis://host``,
    ``sqlite+aiosqlite:///sessions.db``, ``postgresql+asyncpg://...``,
    ``mongodb://host/db``) or a :class:`~asyncsess.stores.base.Store`. A store
    built from a URL is closed by :meth:`aclose`; one passed in is not.

    ``secret`` (str or bytes of at least 32 bytes, or a sequence of them,
    newest first) keys the sealing of session data and user ids at rest
    (``privacy_mode=True``, the default); it is required for persistent stores
    except the file store, which can keep its own key file.

    Sessions end after ``idle_timeout`` without use (sliding) and after
    ``absolute_timeout`` in any case. A validate only writes when less than
    ``renew_fraction`` of the idle timeout remains. ``clock`` returns seconds
    since the epoch (``time.time`` by default). ``async with`` runs the
    expiry sweeper every ``sweep_interval`` in a task group (ten times less
    often on a store that expires records itself, Redis and MongoDB: there it
    only tidies the per-user index).

    Session data is handed out deeply immutable (read-only mappings, lists as
    tuples: see :mod:`asyncsess.session`), so every decoded session is kept
    in a cache of ``decode_cache`` sessions within about ``decode_cache_bytes``
    (second-chance eviction, about least recently used) and handed out again
    while its record's bytes are unchanged: a validate still reads the store
    every time, but does not decrypt and parse the same record twice. ``0``
    keeps none.

    ``near_cache=N`` keeps up to ``N`` live sessions in process memory and
    answers validate from there, with no store round trip, while the store's
    invalidation channel (run in the task group: ``async with`` or
    :meth:`running`) proves healthy: a change made by any process is seen as
    soon as its invalidation arrives, a lost channel drops the whole cache, and
    no session is served more than ``near_cache_ttl`` after it was read (see
    :mod:`asyncsess.nearcache`). Redis, Redis Cluster and PostgreSQL (asyncpg)
    can; other persistent stores raise :class:`~asyncsess.ConfigurationError`;
    ``memory://`` needs none (it is process memory already). ``0``: off.

    ``max_data_bytes`` bounds a session's data (as JSON): larger data raises
    ``ValueError`` (``None``: no bound). ``max_sessions_per_user``, when set,
    ends a user's oldest sessions when a new one would exceed it.

    ``telemetry`` reports spans and metrics to OpenTelemetry: by default
    through the app's global providers whenever ``opentelemetry-api`` is
    installed, at no cost until an SDK is configured (see
    :class:`~asyncsess.Telemetry`; ``False``: never). :attr:`events`
    delivers lifecycle events (created, revoked, login failed...) to
    subscribers, for audit logs (:mod:`asyncsess.observe.events`).
    """

    def __init__(
        self,
        store: str | Store = "memory://",
        *,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        idle_timeout: timedelta | float = timedelta(hours=1),
        absolute_timeout: timedelta | float = timedelta(hours=24),
        privacy_mode: bool = True,
        clock: Callable[[], float] | None = None,
        sweep_interval: timedelta | float = timedelta(minutes=1),
        renew_fraction: float = 0.5,
        sweep_batch: int = 500,
        decode_cache: int = 10_000,
        decode_cache_bytes: int = 64 * 2**20,
        max_data_bytes: int | None = 65536,
        max_sessions_per_user: int | None = None,
        store_options: Mapping[str, Any] | None = None,
        accounts: Accounts | None = None,
        login_limiter: RateLimiter | None = None,
        client_limiter: RateLimiter | None = None,
        telemetry: bool | Telemetry | None = None,
        near_cache: int = 0,
        near_cache_ttl: timedelta | float = timedelta(seconds=5),
    ) -> None:
        self.store, self._owns_store = store_from(store, store_options)
        self.idle_timeout = duration(idle_timeout, "idle_timeout")
        self.absolute_timeout = duration(absolute_timeout, "absolute_timeout")
        self.sweep_interval = duration(sweep_interval, "sweep_interval")
        self.renew_fraction = check_fraction("renew_fraction", renew_fraction)
        self._renew_window = self.idle_timeout * renew_fraction
        self.sweep_batch = check_size("sweep_batch", sweep_batch, least=1)
        self.decode_cache = check_size("decode_cache", decode_cache)
        self._cache = DecodeCache(
            decode_cache, check_size("decode_cache_bytes", decode_cache_bytes)
        )
        self.max_sessions_per_user = check_size(
            "max_sessions_per_user", max_sessions_per_user, least=1, optional=True
        )
        self.privacy_mode = privacy_mode
        self._clock = clock or time.time
        url = store if isinstance(store, str) else None
        self._observer = Observer(
            telemetry,
            store=store_kind(self.store, url),
            clock=self._clock,
            idle_timeout=self.idle_timeout,
        )
        #: Lifecycle events: ``mgr.events.subscribe(callback)`` (see :class:`~asyncsess.Events`).
        self.events: Events = self._observer.events
        self._in_process = in_process = not type(self.store).persistent
        self._sealed = privacy_mode and not in_process
        secrets = normalize_secrets(secret)
        self._codec, self._key_file = codec_for(
            self.store, secrets, privacy_mode=privacy_mode, max_data_bytes=max_data_bytes
        )
        self._near = near_cache_for(self.store, near_cache, near_cache_ttl, self._codec.user_refs)
        self._records = Records(
            self.store,
            self._codec,
            self._cache,
            idle_timeout=self.idle_timeout,
            absolute_timeout=self.absolute_timeout,
            clock=self._clock,
            events=self.events,
            near=self._near,
        )
        self._batcher = batcher_for(self.store)
        self._opened = False
        self._open_lock = anyio.Lock()
        self._background: list[BackgroundTask] = [self._sweeper]
        self._exit_stack: AsyncExitStack | None = None
        self._desk = LoginDesk(
            self,
            accounts,
            end_sessions=self.revoke_all,
            secrets=secrets,
            in_process=in_process,
            clock=self._clock,
            login_limiter=login_limiter,
            client_limiter=client_limiter,
            events=self.events,
        )
        self.accounts = accounts
        self.login_limiter = login_limiter
        self.client_limiter = client_limiter
        self._background += [limiter.cleanup_task for limiter in self._desk.limiters()]
        self._background += self._observer.tasks(self.stats)
        if self._near is not None and self._near.run is not None:
            self._background.append(self._near.run)  # its invalidation channel

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> Self:
        """Build a manager from a mapping (see :mod:`asyncsess.config` for the keys)."""
        return cls(**{**settings_from_mapping(config), **overrides})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build a manager from ``ASYNCSESS_*`` environment variables."""
        return cls(**{**settings_from_env(environ), **overrides})

    def __repr__(self) -> str:
        return (
            f"SessionManager({type(self.store).__name__}, sealed={self._sealed}, "
            f"idle_timeout={self.idle_timeout:g}s, absolute_timeout={self.absolute_timeout:g}s)"
        )

    # -- lifecycle -------------------------------------------------------

    async def _open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await open_parts(self.store, self._codec, self._key_file)
                if self._near is not None and self._near.prepare is not None:
                    await self._near.prepare()  # e.g. PostgreSQL's notify trigger
                self._opened = True

    def add_background_task(self, task: BackgroundTask) -> None:
        """Run ``task`` in the manager's task group (``async with`` / :meth:`running`)."""
        self._background.append(task)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """Run the background tasks (sweeper, limiter cleanup) for the duration of the block."""
        await self._open()
        async with anyio.create_task_group() as tg:
            for task in self._background:
                await tg.start(task)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.running())
        except BaseException:  # e.g. a ConfigurationError on opening: leave nothing open
            await self.aclose()
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._exit_stack = self._exit_stack, None
        try:
            if stack is not None:
                await stack.aclose()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the store if this manager opened it from a URL."""
        if self._owns_store:
            with fail_closed:
                await self.store.aclose()
        self._opened = False

    async def _sweeper(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Sweep about once per ``sweep_interval`` (see :mod:`asyncsess._sweeper`)."""
        await run_sweeper(self.store, self.sweep, self.sweep_interval, task_status=task_status)

    # -- the public API --------------------------------------------------

    @observed("create")
    async def create(self, user_id: str | None, data: Mapping[str, Any] | None = None) -> str:
        """Start a session for ``user_id`` and return its token.

        ``user_id=None`` starts an anonymous session (a visitor's cart before
        login): its :attr:`Session.user_id` is ``None``, no user's
        :meth:`sessions` lists it and no :meth:`revoke_all` ends it; everything
        else (validate, update, rotate, revoke, expiry, sealing) works as for a
        user's session. To log its visitor in, create the user's session with
        its data and revoke it. ``user_id`` is otherwise a non-empty ``str``
        (``TypeError``, ``ValueError``).

        ``data`` must be a JSON-serialisable mapping (``TypeError`` otherwise) of
        at most ``max_data_bytes`` as JSON (``ValueError`` otherwise); it comes
        back deeply immutable, lists as tuples (see :class:`Session`). With
        ``max_sessions_per_user`` set, the user's oldest sessions beyond it end.
        """
        if user_id is not None:
            check_user(user_id)
        body = check_data(data)
        await self._open()
        token = new_token()
        await self._records.create(token, user_id, body, self.max_sessions_per_user)
        return token

    async def validate(self, token: object) -> Session | None:
        """Return the live session of ``token``, or ``None``.

        ``None`` for anything that is not a live session's token: malformed
        (checked without I/O), unknown, expired or revoked, or a record that
        does not open (edited at rest, sealed under a secret no longer
        configured, or given a longer life than ``absolute_timeout``). A record
        sealed under an older secret is rewritten under the newest. Raises
        :class:`~asyncsess.StoreUnavailable` or :class:`~asyncsess.StoreError`
        when the store fails: never a session it could not check.
        """
        # The hot path: written out inline, without helper coroutines.
        watch = self._observer.on  # something to report (asyncsess.observe)? else one check
        if watch and self._observer.wraps():
            return await self._observer.validate(self.validate, token)
        key = lookup_key(token)
        if key is None:
            return None
        if not self._opened:
            await self._open()
        now = self._clock()
        near = self._near
        if near is not None:  # the near cache (asyncsess.nearcache): no store read on a hit
            session = near.get(key, now, now + self._renew_window)
            if session is not None:
                if near.starved:
                    await near.pump()
                if watch:
                    self._observer.validated(None, session, now, cache_hit=True)
                return session
            ticket = near.ticket()
        try:
            if self._in_process:  # no I/O: look first, renew only when due
                record = await self.store.get(key)
                if record is not None and now < record.expires_at < now + self._renew_window:
                    renewal = Renewal(now, now + self._renew_window, now + self.idle_timeout)
                    record = await self.store.get(key, renew=renewal)
            elif self._batcher is None:
                renewal = Renewal(now, now + self._renew_window, now + self.idle_timeout)
                record = await self.store.get(key, renew=renewal)
            else:
                renewal = Renewal(now, now + self._renew_window, now + self.idle_timeout)
                record = await self._batcher.get(key, renewal)
        except AsyncsessError:
            raise
        except Exception as exc:
            raise store_failure(exc) from exc
        if record is None or record.expires_at <= now or record.absolute_at <= now:
            session = None
        else:
            session = self._cache.get(record)
            if session is None:  # a str: it has a lookup key
                session = await self._records.open(cast(str, token), record)
            if near is not None and session is not None:
                near.put(ticket, record, session)
        if watch:
            self._observer.validated(record, session, now)
        return session

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

    def now(self) -> float:
        """The manager's clock: seconds since the epoch (``clock``, or ``time.time``)."""
        return self._clock()
