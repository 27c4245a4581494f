"""SessionManager: the public API and its lifecycle.

The policy lives here once (tokens, expiry, renewal, background tasks). Each
other job has its module: settings in :mod:`asyncsess.config`, the record
format and sealing call in :mod:`asyncsess._codec`, record-level work in
:mod:`asyncsess._records`, the decoded-session cache in :mod:`asyncsess._cache`,
the sweeper in :mod:`asyncsess._sweeper`, batching in :mod:`asyncsess._batching`,
the accounts wiring in :mod:`asyncsess.accounts.login`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, cast

import anyio
from anyio.abc import TaskStatus

from ._batching import Batcher
from ._cache import DecodeCache
from ._codec import Codec, check_data
from ._records import Records, live
from ._sweeper import Progress, run_sweeper, sweep_until
from .accounts.core import Accounts
from .accounts.login import LoginDesk
from .config import (
    check_fraction,
    check_size,
    duration,
    settings_from_env,
    settings_from_mapping,
)
from .exceptions import (
    AsyncsessError,
    ConfigurationError,
    fail_closed,
    store_failure,
)
from .ratelimit import RateLimiter
from .sealing import Keyring, normalize_secrets
from .session import Session, SessionInfo, Stats
from .stores._registry import open_store
from .stores.base import Renewal, Store
from .tokens import lookup_key, new_token

__all__ = ["SessionManager"]

log = logging.getLogger("asyncsess")

#: A coroutine function taking ``task_status`` by keyword, as ``TaskGroup.start`` wants.
BackgroundTask = Callable[..., Coroutine[Any, Any, None]]
_FOREVER = 1000 * 366 * 86400.0  # every session expires before now + this
_IN_FLIGHT = 4  # lookups let through at once; the next ones queue for one get_many
_SESSION_ID = re.compile(r"[0-9a-f]{64}")


def _check_user(user_id: object) -> str:
    if not isinstance(user_id, str):
        raise TypeError(f"user_id must be a str, not {type(user_id).__name__}")
    if not user_id:
        raise ValueError("user_id must be a non-empty str")
    return user_id


def _key_file(store: Store) -> Callable[[], Awaitable[bytes]] | None:
    """The file store's own key file, the secret when none is configured."""
    try:
        from .stores.file import FileStore
    except ImportError:  # its driver is missing: this is no file store
        return None
    return store.key if isinstance(store, FileStore) else None


class SessionManager:
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
    (least recently used out first) and handed out again while its record's
    bytes are unchanged: a validate still reads the store every time, but does
    not decrypt and parse the same record twice. ``0`` keeps none.

    ``max_data_bytes`` bounds a session's data (as JSON): larger data raises
    ``ValueError`` (``None``: no bound). ``max_sessions_per_user``, when set,
    ends a user's oldest sessions when a new one would exceed it.
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
    ) -> None:
        if isinstance(store, Store) and not store_options:
            self.store, self._owns_store = store, False
        elif isinstance(store, str):
            self.store, self._owns_store = open_store(store, **(store_options or {})), True
        else:
            raise ConfigurationError(
                f"store must be a URL or an asyncsess Store (store_options only apply to a URL), "
                f"not {type(store).__name__}" + (" with store_options" if store_options else "")
            )
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
        check_size("max_data_bytes", max_data_bytes, optional=True)
        self.max_sessions_per_user = check_size(
            "max_sessions_per_user", max_sessions_per_user, least=1, optional=True
        )
        self.privacy_mode = privacy_mode
        self._clock = clock or time.time
        self._in_process = in_process = not type(self.store).persistent
        self._sealed = privacy_mode and not in_process
        secrets = normalize_secrets(secret)
        keyring = Keyring(secrets) if self._sealed and secrets else None
        self._codec = Codec(keyring, in_process=in_process, max_data_bytes=max_data_bytes)
        self._key_file = _key_file(self.store) if self._sealed and keyring is None else None
        if self._sealed and keyring is None and self._key_file is None:
            raise ConfigurationError(
                f"{type(self.store).__name__} keeps sessions at rest, so privacy mode needs a "
                'secret: pass secret=... (python -c "import secrets; '
                'print(secrets.token_urlsafe(32))") or set ASYNCSESS_SECRET; '
                "or pass privacy_mode=False to store data in the clear"
            )
        self._records = Records(
            self.store,
            self._codec,
            self._cache,
            idle_timeout=self.idle_timeout,
            absolute_timeout=self.absolute_timeout,
            clock=self._clock,
        )
        batches = type(self.store).get_many is not Store.get_many
        self._batcher = Batcher(self.store, limit=_IN_FLIGHT) if batches else None
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
        )
        self.accounts = accounts
        self.login_limiter = login_limiter
        self.client_limiter = client_limiter
        self._background += [limiter.cleanup_task for limiter in self._desk.limiters()]

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
        async with self._open_lock:
            if self._opened:
                return
            with fail_closed:
                await self.store.open()
                if self._key_file is not None and self._codec.keyring is None:
                    self._codec.keyring = Keyring(normalize_secrets([await self._key_file()]))
            self._opened = True

    def add_background_task(self, task: BackgroundTask) -> None:
        """Run ``task`` in the manager's task group (``async with`` / :meth:`running`)."""
        self._background.append(task)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """Run the background tasks (sweeper, limiter cleanup) for the duration of the block."""
        if not self._opened:
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
        await stack.enter_async_context(self.running())
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
            _check_user(user_id)
        body = check_data(data)
        if not self._opened:
            await self._open()
        token = new_token()
        now = self._clock()
        absolute = now + self.absolute_timeout
        record = self._codec.record(
            token, user_id, body, 1, now, min(now + self.idle_timeout, absolute), absolute
        )
        with fail_closed:
            await self.store.insert(record)
        if self.max_sessions_per_user is not None and user_id is not None:
            await self._records.trim(user_id, record.key, now, self.max_sessions_per_user)
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
        key = lookup_key(token)
        if key is None:
            return None
        if not self._opened:
            await self._open()
        now = self._clock()
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
            return None
        session = self._cache.get(record)
        if session is not None:
            return session
        return await self._records.open(cast(str, token), record)  # a str: it has a lookup key

    async def revoke(self, token: object) -> bool:
        """End the session of ``token``; ``True`` if it existed.

        Raises :class:`~asyncsess.StoreUnavailable` (or another
        :class:`~asyncsess.StoreError`) when the store fails.
        """
        key = lookup_key(token)
        if key is None:
            return False
        if not self._opened:
            await self._open()
        self._cache.drop(key)
        with fail_closed:
            return await self.store.delete(key)

    async def revoke_all(self, user_id: str, *, keep: object = None) -> int:
        """End every session of ``user_id`` (but the one of token ``keep``); return the count.

        ``user_id`` must be a non-empty ``str`` (``TypeError``, ``ValueError``).
        """
        _check_user(user_id)
        if not self._opened:
            await self._open()
        keep_key = lookup_key(keep)
        with fail_closed:
            counts = [
                await self.store.delete_user(ref, keep=keep_key)
                for ref in self._codec.user_refs(user_id)
            ]
        return sum(counts)

    async def revoke_session(self, session_id: object, *, user_id: str) -> bool:
        """End one of ``user_id``'s sessions by its id (:attr:`Session.id`, :attr:`SessionInfo.id`).

        Returns ``False`` when ``session_id`` is not the id of one of
        ``user_id``'s live sessions (another user's, an anonymous one, ended,
        or not an id at all): "log out that device", owner checked.
        ``user_id`` must be a non-empty ``str`` (``TypeError``, ``ValueError``).
        """
        _check_user(user_id)
        if type(session_id) is not str or not _SESSION_ID.fullmatch(session_id):
            return False
        if not self._opened:
            await self._open()
        with fail_closed:
            record = await self.store.get(session_id)
            if not live(record, self._clock()):
                return False
            assert record is not None
            if not record.user_ref or record.user_ref not in self._codec.user_refs(user_id):
                return False
            self._cache.drop(session_id)
            return await self.store.delete(session_id)

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """List the live sessions of ``user_id``, oldest first (ids and times, no tokens).

        ``user_id`` must be a non-empty ``str`` (``TypeError``, ``ValueError``).
        """
        _check_user(user_id)
        if not self._opened:
            await self._open()
        return [
            SessionInfo(r.key, r.version, r.created_at, r.expires_at, r.absolute_at)
            for r in await self._records.of_user(user_id, self._clock())
        ]

    async def _key(self, token: object) -> str | None:
        """The store key of a well-formed ``token`` (``None`` otherwise), the store opened."""
        key = lookup_key(token)
        if key is not None and not self._opened:
            await self._open()
        return key

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

    async def count(self) -> tuple[int, int]:
        """Return how many sessions the store holds that are live, and expired (not swept)."""
        if not self._opened:
            await self._open()
        with fail_closed:
            return await self.store.count(self._clock())

    async def stats(self) -> Stats:
        """The store's live and expired sessions (:meth:`count`) and the cache's figures."""
        live, expired = await self.count()
        cache = self._cache
        return Stats(live, expired, len(cache), cache.size, cache.hits, cache.misses)

    async def sweep(self, *, progress: Progress | None = None) -> int:
        """Delete expired sessions in batches of ``sweep_batch``; return the count.

        ``progress`` is called with the running total after each batch.
        """
        if not self._opened:
            await self._open()
        return await sweep_until(self.store, self._clock(), self.sweep_batch, progress)

    async def wipe(self, *, progress: Progress | None = None) -> int:
        """Delete every session in the store; return the count. Users stay (``Accounts.wipe``).

        Sessions go in batches of ``sweep_batch`` (``progress`` is called with
        the running total after each), then whatever else the store keeps.
        """
        if not self._opened:
            await self._open()
        self._cache.clear()
        total = await sweep_until(self.store, self._clock() + _FOREVER, self.sweep_batch, progress)
        with fail_closed:
            total += await self.store.wipe()
        return total

    # -- accounts (see asyncsess.accounts.login) ---------------------------

    async def login(
        self,
        username: str,
        password: str,
        *,
        client: str | None = None,
        device: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Authenticate against ``accounts`` and return a new session's token, or ``None``.

        Attempts are limited per username (``login_limiter``), per ``client``
        address (``client_limiter``) or per known ``device`` (a token from
        :meth:`device_token`); over a limit :class:`~asyncsess.LoginThrottled`
        is raised. The session's data is ``data`` with ``{"username": ...}``.
        See :mod:`asyncsess.accounts.login`.
        """
        return await self._desk.login(username, password, client=client, device=device, data=data)

    def device_token(self, username: str) -> str:
        """Issue a device token for ``username`` after a successful :meth:`login`.

        Signed under the newest ``secret`` (a ``memory://`` manager without one:
        a per-process key); :class:`~asyncsess.ConfigurationError` when a
        persistent store's manager has no ``secret``. See
        :mod:`asyncsess.accounts.devices`.
        """
        return self._desk.device_token(username)

    async def logout(self, token: object) -> bool:
        """End the session of ``token`` (:meth:`revoke`); ``True`` if it existed."""
        return await self.revoke(token)
