"""SessionManager: every session policy, once: tokens, expiry, sealing, renewal, background."""

from __future__ import annotations

import json
import logging
import marshal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from types import MappingProxyType, TracebackType
from typing import Any, NamedTuple, Self, cast

import anyio
from anyio.abc import TaskStatus

from ._batching import Batcher
from .accounts.core import Accounts
from .accounts.login import login as _login
from .accounts.user import User
from .config import duration, settings_from_env, settings_from_mapping
from .exceptions import (
    AsyncsessError,
    ConfigurationError,
    SessionConflict,
    StoreError,
    StoreUnavailable,
)
from .ratelimit import RateLimiter
from .sealing import Keyring, SealError, normalize_secrets
from .session import Session, SessionInfo
from .stores._registry import open_store
from .stores.base import Record, Renewal, Store
from .tokens import is_well_formed, lookup_key, new_token, token_key

__all__ = ["SessionManager"]

log = logging.getLogger("asyncsess")

#: A coroutine function taking ``task_status`` by keyword, as ``TaskGroup.start`` wants.
BackgroundTask = Callable[..., Coroutine[Any, Any, None]]
_UPDATE_RETRIES = 16
_FOREVER = 1000 * 366 * 86400.0  # every session expires before now + this
#: Called with the running count of a long sweep or wipe.
Progress = Callable[[int], object]
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _store_failure(exc: Exception) -> StoreError:
    kind = StoreUnavailable if isinstance(exc, OSError | TimeoutError) else StoreError
    return kind(f"session store failed: {type(exc).__name__}: {exc}")


class _FailClosed:
    """Map any non-asyncsess exception escaping a store to a StoreError, chained."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, AsyncsessError):
            return
        raise _store_failure(exc) from exc


_fail_closed = _FailClosed()


class _Found(NamedTuple):
    token: str
    record: Record
    now: float
    user_id: str
    data: dict[str, Any]


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
    expiry sweeper every ``sweep_interval`` in a task group.

    ``decode_cache`` is how many decoded sessions a manager over a persistent
    store keeps (oldest out first): a validate still reads the store every
    time, but a record byte-for-byte the same as one opened before is not
    decrypted and parsed again. Only sessions whose data values are all
    scalars are kept (the session handed out is then immutable); ``0`` keeps
    none.
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
        store_options: Mapping[str, Any] | None = None,
        accounts: Accounts | None = None,
        login_limiter: RateLimiter | None = None,
        client_limiter: RateLimiter | None = None,
    ) -> None:
        if isinstance(store, str):
            self.store: Store = open_store(store, **(store_options or {}))
            self._owns_store = True
        elif isinstance(store, Store):
            if store_options:
                raise ConfigurationError("store_options only apply when store is a URL")
            self.store, self._owns_store = store, False
        else:
            raise ConfigurationError(
                f"store must be a URL or an asyncsess Store, not {type(store).__name__}"
            )
        self.idle_timeout = duration(idle_timeout, "idle_timeout")
        self.absolute_timeout = duration(absolute_timeout, "absolute_timeout")
        self.sweep_interval = duration(sweep_interval, "sweep_interval")
        if not 0.0 <= renew_fraction <= 1.0:
            raise ConfigurationError(f"renew_fraction must be within [0, 1], not {renew_fraction}")
        if sweep_batch < 1:
            raise ConfigurationError(f"sweep_batch must be at least 1, not {sweep_batch}")
        self.renew_fraction = renew_fraction
        self._renew_window = self.idle_timeout * renew_fraction
        self.sweep_batch = sweep_batch
        if type(decode_cache) is not int or decode_cache < 0:  # a bool is not a size
            raise ConfigurationError(f"decode_cache must be an int >= 0, not {decode_cache!r}")
        self.decode_cache = decode_cache
        # lookup key -> (payload, user_ref, the session opened from them)
        self._decoded: dict[str, tuple[bytes, str, Session]] = {}
        self.privacy_mode = privacy_mode
        self._clock = clock or time.time
        self._in_process = not type(self.store).persistent
        self._sealed = privacy_mode and not self._in_process
        secrets = normalize_secrets(secret)
        self._keyring = Keyring(secrets) if self._sealed and secrets else None
        if self._sealed and self._keyring is None and not type(self.store).provides_secret:
            raise ConfigurationError(
                f"{type(self.store).__name__} keeps sessions at rest, so privacy mode needs a "
                'secret: pass secret=... (python -c "import secrets; '
                'print(secrets.token_urlsafe(32))") or set ASYNCSESS_SECRET; '
                "or pass privacy_mode=False to store data in the clear"
            )
        self._peek = self.store.peek
        batches = type(self.store).get_many is not Store.get_many
        self._batcher = Batcher(self.store, limit=self.store.max_in_flight) if batches else None
        self._opened = False
        self._open_lock = anyio.Lock()
        self._background: list[BackgroundTask] = [self._sweeper]
        self._exit_stack: AsyncExitStack | None = None
        if accounts is not None and not isinstance(accounts, Accounts):
            raise ConfigurationError(f"accounts must be an Accounts, not {type(accounts).__name__}")
        for name, limiter in (("login_limiter", login_limiter), ("client_limiter", client_limiter)):
            if limiter is not None and not isinstance(limiter, RateLimiter):
                raise ConfigurationError(f"{name} must be a RateLimiter, not {limiter!r}")
        self.accounts = accounts
        self.login_limiter = login_limiter
        # One limiter may serve both: its keys are "user:<name>" and "client:<address>".
        self.client_limiter = client_limiter if client_limiter is not None else login_limiter
        if accounts is not None:  # a new password or a deleted user ends every session
            accounts.on_password_change = accounts.on_delete = self._end_sessions_of
        for limiter in {id(x): x for x in (self.login_limiter, self.client_limiter) if x}.values():
            self._background.append(limiter.cleanup_task)  # bounds the memory limiter's keys

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
            with _fail_closed:
                await self.store.open()
                if self._sealed and self._keyring is None:
                    secret = await self.store.default_secret()
                    if secret is None:
                        raise ConfigurationError(
                            f"{type(self.store).__name__} supplied no secret; pass secret=..."
                        )
                    self._keyring = Keyring([secret])
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
            with _fail_closed:
                await self.store.aclose()
        self._opened = False

    async def _sweeper(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await anyio.sleep(self.sweep_interval)
            try:
                removed = await self.sweep()
            except AsyncsessError as exc:
                log.warning("session sweep failed: %s", exc)
            else:
                if removed:
                    log.debug("swept %d expired sessions", removed)

    # -- records ---------------------------------------------------------

    def _user_refs(self, user_id: str) -> list[str]:
        return self._keyring.user_refs(user_id) if self._keyring is not None else [user_id]

    def _payload(self, token: str, key: str, user_ref: str, user_id: str, data: Any) -> bytes:
        plain = json.dumps({"u": user_id, "d": data}, separators=(",", ":")).encode()
        if self._in_process:
            # the same JSON types as every other store, in a faster format for this process
            return marshal.dumps(json.loads(plain))
        if self._keyring is None:
            return plain
        return self._keyring.seal(token, plain, f"{key}\x00{user_ref}".encode())

    def _unpack(self, token: str, record: Record) -> tuple[str, dict[str, Any]] | None:
        try:
            plain = record.payload
            if self._keyring is not None:
                aad = f"{record.key}\x00{record.user_ref}".encode()
                plain = self._keyring.open(token, plain, aad)
            body = marshal.loads(plain) if self._in_process else json.loads(plain)  # noqa: S302
            return body["u"], body["d"]
        except (SealError, ValueError, KeyError, TypeError, EOFError) as exc:
            log.warning("session record %s… does not open: %s", record.key[:8], exc)
            return None

    @staticmethod
    def _check_new(user_id: object, data: object) -> dict[str, Any]:
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty str")
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise TypeError(f"session data must be a mapping, not {type(data).__name__}")
        return dict(data)

    # -- the public API --------------------------------------------------

    async def create(self, user_id: str, data: Mapping[str, Any] | None = None) -> str:
        """Start a session for ``user_id`` and return its token.

        ``data`` must be JSON-serialisable (``TypeError`` otherwise).
        """
        body = self._check_new(user_id, data)
        if not self._opened:
            await self._open()
        token = new_token()
        key = token_key(token)
        user_ref = self._user_refs(user_id)[0]
        now = self._clock()
        absolute = now + self.absolute_timeout
        record = Record(
            key,
            user_ref,
            self._payload(token, key, user_ref, user_id, body),
            1,
            now,
            min(now + self.idle_timeout, absolute),
            absolute,
        )
        with _fail_closed:
            await self.store.insert(record)
        return token

    async def _find(self, token: object) -> _Found | None:
        """Look up a live session without renewing it (for rotate and update)."""
        if not is_well_formed(token):
            return None
        if not self._opened:
            await self._open()
        now = self._clock()
        with _fail_closed:
            record = await self.store.get(token_key(token))
        if record is None or record.expires_at <= now or record.absolute_at <= now:
            return None
        opened = self._unpack(token, record)
        if opened is None:
            return None
        return _Found(token, record, now, *opened)

    def _successor(self, found: _Found, token: str, data: Any, version: int) -> Record:
        """The record of ``found``'s session under ``token`` with ``data``, active now."""
        old = found.record
        key = token_key(token)
        return Record(
            key,
            old.user_ref,
            self._payload(token, key, old.user_ref, found.user_id, data),
            version,
            old.created_at,
            min(found.now + self.idle_timeout, old.absolute_at),
            old.absolute_at,
        )

    async def validate(self, token: object) -> Session | None:
        """Return the live session of ``token``, or ``None``.

        ``None`` for anything that is not a live session's token: malformed
        (checked without I/O), unknown, expired or revoked. Raises
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
            if self._peek is not None:  # in process: look first, renew only when due
                record = self._peek(key)
                if record is not None and now < record.expires_at < now + self._renew_window:
                    renewal = Renewal(now, now + self._renew_window, now + self.idle_timeout)
                    record = await self.store.get(key, renew=renewal)
            else:
                renewal = Renewal(now, now + self._renew_window, now + self.idle_timeout)
                if self._batcher is None:
                    record = await self.store.get(key, renew=renewal)
                else:
                    record = await self._batcher.get(key, renewal)
        except AsyncsessError:
            raise
        except Exception as exc:
            raise _store_failure(exc) from exc
        if record is None or record.expires_at <= now or record.absolute_at <= now:
            return None
        if record.memo is not None:
            session: Session = record.memo
            return session
        decoded = self._decoded.get(key)
        if decoded is not None and decoded[0] == record.payload and decoded[1] == record.user_ref:
            # the same bytes under the same key (so the same token) open to the same session
            session = decoded[2]
            times = (record.version, record.created_at, record.expires_at, record.absolute_at)
            if session[3:] != times:  # renewed, or rewritten with the same sealed bytes
                session = Session(key, session.user_id, session.data, *times)
                self._decoded[key] = (decoded[0], decoded[1], session)
            return session
        opened = self._unpack(cast(str, token), record)  # a str: it has a lookup key
        if opened is None:
            return None
        user_id, data = opened
        session = Session(
            record.key,
            user_id,
            MappingProxyType(data),
            record.version,
            record.created_at,
            record.expires_at,
            record.absolute_at,
        )
        if all(type(v) in _SCALARS for v in data.values()):
            # flat data makes the session wholly immutable, so it can be handed out again
            if self._peek is not None:  # the store hands out this very record until it changes
                record.memo = session
            elif self.decode_cache:
                if len(self._decoded) >= self.decode_cache:
                    del self._decoded[next(iter(self._decoded))]
                self._decoded[key] = (record.payload, record.user_ref, session)
        return session

    async def revoke(self, token: object) -> bool:
        """End the session of ``token``; ``True`` if it existed."""
        if not is_well_formed(token):
            return False
        if not self._opened:
            await self._open()
        key = token_key(token)
        self._decoded.pop(key, None)
        with _fail_closed:
            return await self.store.delete(key)

    async def revoke_all(self, user_id: str, *, keep: object = None) -> int:
        """End every session of ``user_id`` (but the one of token ``keep``); return the count."""
        if not self._opened:
            await self._open()
        keep_key = token_key(keep) if is_well_formed(keep) else None
        with _fail_closed:
            counts = [
                await self.store.delete_user(ref, keep=keep_key) for ref in self._user_refs(user_id)
            ]
        return sum(counts)

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """List the live sessions of ``user_id``, oldest first (ids and times, no tokens)."""
        if not self._opened:
            await self._open()
        now = self._clock()
        with _fail_closed:
            records = [
                r for ref in self._user_refs(user_id) for r in await self.store.list_user(ref)
            ]
        return [
            SessionInfo(r.key, r.version, r.created_at, r.expires_at, r.absolute_at)
            for r in sorted(records, key=lambda r: r.created_at)
            if r.expires_at > now and r.absolute_at > now
        ]

    async def rotate(self, token: object) -> str | None:
        """Move the session of ``token`` to a new token and end the old one.

        The session keeps its data, version, creation and absolute expiry.
        Returns ``None`` when ``token`` is not a live session.
        """
        found = await self._find(token)
        if found is None:
            return None
        new = new_token()
        rotated = self._successor(found, new, found.data, found.record.version)
        self._decoded.pop(found.record.key, None)
        with _fail_closed:
            await self.store.insert(rotated)
            if not await self.store.delete(found.record.key):
                await self.store.delete(rotated.key)
                return None
        return new

    async def update(
        self, token: object, data: Mapping[str, Any], *, version: int | None = None
    ) -> bool:
        """Replace the data of the session of ``token``; ``False`` if it is not live.

        With ``version``, the write happens only if the session is still at
        that version; otherwise :class:`~asyncsess.SessionConflict` is raised.
        Without it, concurrent updates are applied one after the other.
        """
        for _ in range(_UPDATE_RETRIES):
            found = await self._find(token)
            if found is None:
                return False
            current = found.record.version
            if version is not None and current != version:
                raise SessionConflict(version, current)
            body = self._check_new(found.user_id, data)
            new = self._successor(found, found.token, body, current + 1)
            with _fail_closed:
                if await self.store.replace(new, expected_version=current):
                    return True
            if version is not None:
                now = await self._find(token)
                raise SessionConflict(version, None if now is None else now.record.version)
        raise SessionConflict(current, None)

    def now(self) -> float:
        """The manager's clock: seconds since the epoch (``clock``, or ``time.time``)."""
        return self._clock()

    async def count(self) -> tuple[int, int]:
        """Return how many sessions the store holds that are live, and expired (not swept)."""
        if not self._opened:
            await self._open()
        with _fail_closed:
            return await self.store.count(self._clock())

    async def _sweep_until(self, now: float, progress: Progress | None) -> int:
        total = 0
        while True:
            with _fail_closed:
                removed = await self.store.sweep(now, limit=self.sweep_batch)
            total += removed
            if progress is not None:
                progress(total)
            if removed < self.sweep_batch:
                return total
            await anyio.lowlevel.checkpoint()

    async def sweep(self, *, progress: Progress | None = None) -> int:
        """Delete expired sessions in batches of ``sweep_batch``; return the count.

        ``progress`` is called with the running total after each batch.
        """
        if not self._opened:
            await self._open()
        return await self._sweep_until(self._clock(), progress)

    # -- accounts ---------------------------------------------------------

    async def _end_sessions_of(self, user: User) -> None:
        await self.revoke_all(user.id)

    async def login(self, username: str, password: str, *, client: str | None = None) -> str | None:
        """Authenticate against ``accounts`` and return a new session's token, or ``None``.

        Attempts are counted per username by ``login_limiter`` and per
        ``client`` (e.g. the remote address) by ``client_limiter``; over a
        limit, :class:`~asyncsess.LoginThrottled` (``retry_after``, ``scope``)
        is raised. A success resets the username's count. The session's user
        id is ``user.id`` and its data ``{"username": user.username}``. See
        :mod:`asyncsess.accounts.login`.
        """
        if self.accounts is None:
            raise ConfigurationError(
                "login needs accounts: SessionManager(..., accounts=Accounts(store))"
            )
        return await _login(
            self,
            self.accounts,
            username,
            password,
            client=client,
            user_limiter=self.login_limiter,
            client_limiter=self.client_limiter,
        )

    async def logout(self, token: object) -> bool:
        """End the session of ``token`` (:meth:`revoke`); ``True`` if it existed."""
        return await self.revoke(token)

    async def wipe(self, *, progress: Progress | None = None) -> int:
        """Delete every session in the store, and every user of ``accounts``; return the sessions.

        Sessions go in batches of ``sweep_batch`` (``progress`` is called with
        the running total after each), then whatever else the store keeps.
        """
        if not self._opened:
            await self._open()
        self._decoded.clear()
        total = await self._sweep_until(self._clock() + _FOREVER, progress)
        with _fail_closed:
            total += await self.store.wipe()
        if self.accounts is not None:
            await self.accounts.wipe()
        return total
