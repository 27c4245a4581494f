"""SessionManager: building a manager, creating sessions, and the hot path, ``validate``.

The rest of the API is in mixins by job: changing and ending sessions in
:mod:`asyncsess._changes` (the store work in :mod:`asyncsess._records`),
opening, background tasks and closing in :mod:`asyncsess._lifecycle`,
store-wide upkeep in :mod:`asyncsess._upkeep`, login in
:mod:`asyncsess.accounts.login`. Building the parts is :mod:`asyncsess._setup`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, Self, cast

import anyio

from ._cache import DecodeCache
from ._changes import Changes
from ._codec import check_data
from ._lifecycle import BackgroundTask, Lifecycle
from ._records import Records
from ._setup import batcher_for, check_user, codec_for, store_from
from ._upkeep import Upkeep
from .accounts.core import Accounts
from .accounts.login import LoginDesk, LoginMethods
from .config import check_fraction, check_size, duration, settings_from_env, settings_from_mapping
from .exceptions import AsyncsessError, store_failure
from .nearcache import near_cache_for
from .observe.events import Events
from .observe.observer import Observer, observed
from .observe.telemetry import Telemetry, store_kind
from .ratelimit import RateLimiter
from .sealing import normalize_secrets
from .session import Session
from .stores.base import Renewal, Store
from .tokens import hash_key, lookup_key, new_token

__all__ = ["SessionManager"]


class SessionManager(Lifecycle, Changes, Upkeep, LoginMethods):
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

    # What validate reads: slots, faster than a dict of this many attributes.
    __slots__ = (
        "_batcher",
        "_cache",
        "_clock",
        "_decoded",
        "_in_process",
        "_key_of",
        "_near",
        "_observer",
        "_opened",
        "_records",
        "_renew_window",
        "idle_timeout",
        "store",
    )

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
        self._decoded = self._cache.entries
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
        # In process, a dict lookup costs less than checking a token's alphabet first.
        self._key_of = hash_key if in_process else lookup_key
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
        key = self._key_of(token)
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
            else:
                renewal = Renewal(now, now + self._renew_window, now + self.idle_timeout)
                batcher = self._batcher
                if batcher is None:
                    record = await self.store.get(key, renew=renewal)
                elif batcher.claim():  # a free slot: the store call is this one's own
                    try:
                        record = await self.store.get(key, renew=renewal)
                    finally:
                        batcher.release()
                else:
                    record = await batcher.queued(key, renewal)
        except AsyncsessError:
            raise
        except Exception as exc:
            raise store_failure(exc) from exc
        if record is None or record.expires_at <= now or record.absolute_at <= now:
            session = None
        else:
            entry = self._decoded.get(key)
            if entry is not None and entry[0] is record:  # the very record opened before
                entry[2] = True
                self._cache.hits += 1
                session = entry[1]
            else:
                session = self._cache.get(record)
            if session is None:  # a str: it has a lookup key
                session = await self._records.open(cast(str, token), record)
            if near is not None and session is not None:
                near.put(ticket, record, session)
        if watch:
            self._observer.validated(record, session, now)
        return session

    def now(self) -> float:
        """The manager's clock: seconds since the epoch (``clock``, or ``time.time``)."""
        return self._clock()
