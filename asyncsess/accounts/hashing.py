"""Argon2id password hashing (argon2-cffi) that never blocks the event loop.

Defaults: ``time_cost=2``, ``memory_cost=19456`` KiB (19 MiB), ``parallelism=1``,
16-byte salt, 32-byte hash: the minimum configuration of the OWASP Password
Storage Cheat Sheet for Argon2id, about 50-100 ms on one core of a small
server. RFC 9106's second recommended option (§4: t=3, 64 MiB, p=4) is
:meth:`PasswordHasher.rfc9106_low_memory`; both are "uniformly safe", the
first uses a third of the memory per login. Any other parameters can be
passed; stored hashes made with other parameters still verify, and
:meth:`~asyncsess.accounts.Accounts.authenticate` rehashes them on the next
successful login.

Hashing and verifying run in worker threads (``anyio.to_thread.run_sync``;
argon2-cffi releases the GIL) through a :class:`anyio.CapacityLimiter` of
``max_concurrency`` tokens (default: the number of CPUs this process may
use, less one for the event loop's own thread), so a burst of logins queues
instead of taking every core and thread, and ``max_concurrency * memory_cost``
bounds the memory they use. The queue is bounded too: with ``max_concurrency``
hashes running and ``max_waiting`` (default ``10 * max_concurrency``, about
half a second of work at the defaults) waiting, one more is refused at once
with :class:`~asyncsess.LoginThrottled` (``scope="busy"``, ``retry_after=1``)
instead of making every login wait behind the burst.

An unknown user costs one verification against a dummy hash made with the
parameters of the *typical stored hash*: the most common parameters among the
last 64 stored hashes this hasher verified (the hasher's own before any).
So after the parameters are raised, while most stored hashes still have the
old ones, an unknown user still costs what a known user with a wrong
password costs (``python benchmarks/login_timing.py --old-hashes``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio

from ..exceptions import ConfigurationError, LoginThrottled, MissingDependency

if TYPE_CHECKING:
    import argon2

__all__ = ["PasswordHasher"]

#: How many recently verified stored hashes decide the dummy hash's parameters.
T = TypeVar("T")
_SEEN = 64
#: How many dummy hashes (one per parameter set) are kept.
_DUMMIES = 8


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _argon2() -> Any:
    try:
        import argon2
    except ImportError as exc:
        raise MissingDependency(
            "password hashing needs argon2-cffi, which asyncsess depends on: "
            "pip install argon2-cffi (or reinstall asyncsess)"
        ) from exc
    return argon2


class PasswordHasher:
    """Argon2id hashing, verification and rehash checks, off the event loop.

    Every ``*_cost`` argument is argon2's own (``memory_cost`` in KiB).
    ``max_concurrency`` bounds how many hashes run at once, ``max_waiting``
    how many more may wait (beyond: :class:`~asyncsess.LoginThrottled`, ``"busy"``).
    """

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 19 * 1024,
        parallelism: int = 1,
        hash_len: int = 32,
        salt_len: int = 16,
        max_concurrency: int | None = None,
        max_waiting: int | None = None,
    ) -> None:
        lib = _argon2()
        for name, value, low in (
            ("time_cost", time_cost, 1),
            ("parallelism", parallelism, 1),
            ("memory_cost", memory_cost, 8 * parallelism if type(parallelism) is int else 8),
            ("hash_len", hash_len, 16),
            ("salt_len", salt_len, 16),
        ):
            if type(value) is not int or value < low:
                raise ConfigurationError(f"{name} must be an int of at least {low}, not {value!r}")
        if max_concurrency is None:
            max_concurrency = max(1, _available_cpus() - 1)
        if type(max_concurrency) is not int or max_concurrency < 1:
            raise ConfigurationError(
                f"max_concurrency must be an int of at least 1, not {max_concurrency!r}"
            )
        if max_waiting is None:
            max_waiting = 10 * max_concurrency
        if type(max_waiting) is not int or max_waiting < 0:
            raise ConfigurationError(
                f"max_waiting must be an int of at least 0, not {max_waiting!r}"
            )
        self._lib = lib
        self._hasher: argon2.PasswordHasher = lib.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=hash_len,
            salt_len=salt_len,
            type=lib.Type.ID,
        )
        self._mismatch: type[Exception] = lib.exceptions.VerificationError
        self._invalid: type[Exception] = lib.exceptions.InvalidHashError
        self.max_concurrency = max_concurrency
        #: Bounds the hashes running at once (share it to bound several hashers together).
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.max_waiting = max_waiting
        self._pending = 0
        # the parameters of recently verified stored hashes
        self._seen: deque[Any] = deque(maxlen=_SEEN)
        self._dummies: dict[Any, str] = {}
        self._dummy_lock = anyio.Lock()

    @classmethod
    def rfc9106_low_memory(
        cls, *, max_concurrency: int | None = None, max_waiting: int | None = None
    ) -> Self:
        """RFC 9106 §4's second recommended option: t=3, m=64 MiB, p=4."""
        return cls(
            time_cost=3,
            memory_cost=64 * 1024,
            parallelism=4,
            max_concurrency=max_concurrency,
            max_waiting=max_waiting,
        )

    def __repr__(self) -> str:
        h = self._hasher
        return (
            f"PasswordHasher(argon2id, t={h.time_cost}, m={h.memory_cost} KiB, "
            f"p={h.parallelism}, max_concurrency={self.max_concurrency}, "
            f"max_waiting={self.max_waiting})"
        )

    @property
    def parameters(self) -> dict[str, int]:
        """The argon2 parameters new hashes get."""
        h = self._hasher
        return {
            "time_cost": h.time_cost,
            "memory_cost": h.memory_cost,
            "parallelism": h.parallelism,
            "hash_len": h.hash_len,
            "salt_len": h.salt_len,
        }

    async def _run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a worker thread, or refuse at once if the queue is full."""
        if self._pending >= self.max_concurrency + self.max_waiting:
            raise LoginThrottled(1.0, "busy")
        self._pending += 1
        try:
            return await anyio.to_thread.run_sync(work, limiter=self.limiter)
        finally:
            self._pending -= 1

    @property
    def dummy_parameters(self) -> dict[str, int]:
        """The argon2 parameters an unknown user's verification uses now (see the module)."""
        typical = self._typical()
        if typical is None:
            return self.parameters
        params = self._lib.Parameters(*typical)
        return {name: getattr(params, name) for name in self.parameters}

    async def hash(self, password: str) -> str:
        """Return the argon2id PHC string (``$argon2id$v=19$m=...``) of ``password``.

        Raises :class:`~asyncsess.LoginThrottled` (``"busy"``) when the queue is full.
        """
        return await self._run(lambda: str(self._hasher.hash(password)))

    def _verify(self, encoded: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(encoded, password))
        except (self._mismatch, self._invalid):
            return False

    async def verify(self, encoded: str, password: str) -> bool:
        """Whether ``password`` matches the stored hash ``encoded``; a malformed hash is ``False``.

        Raises :class:`~asyncsess.LoginThrottled` (``"busy"``) when the queue is full.
        """
        with contextlib.suppress(self._invalid, ValueError):  # malformed: no parameters
            self._seen.append(dataclasses.astuple(self._lib.extract_parameters(encoded)))
        return await self._run(lambda: self._verify(encoded, password))

    def needs_rehash(self, encoded: str) -> bool:
        """Whether ``encoded`` was made with other parameters (or another argon2 type)."""
        try:
            return bool(self._hasher.check_needs_rehash(encoded))
        except (self._invalid, ValueError):
            return True

    def _typical(self) -> Any:
        """The parameters of the typical stored hash (``None``: this hasher's own)."""
        if self._seen:
            return Counter(self._seen).most_common(1)[0][0]
        return None

    async def _dummy(self, params: Any) -> str:
        dummy = self._dummies.get(params)
        if dummy is not None:
            return dummy
        async with self._dummy_lock:
            if params not in self._dummies:
                hasher = self._hasher
                if params is not None:
                    hasher = self._lib.PasswordHasher.from_parameters(self._lib.Parameters(*params))
                plain = secrets.token_urlsafe(32)
                made = await self._run(lambda: str(hasher.hash(plain)))
                if len(self._dummies) >= _DUMMIES:
                    del self._dummies[next(iter(self._dummies))]
                self._dummies[params] = made
            return self._dummies[params]

    async def prepare(self) -> None:
        """Make the dummy hash of :meth:`dummy_verify` now (else its first call makes it)."""
        await self._dummy(self._typical())

    async def dummy_verify(self, password: str) -> bool:
        """Do the work of a :meth:`verify` against a hash nobody has; always ``False``.

        Used for unknown users so that they cost as much as a wrong password: the
        dummy hash has the parameters of the typical stored hash (see the module
        docstring), each dummy made once.
        """
        dummy = await self._dummy(self._typical())
        await self._run(lambda: self._verify(dummy, password))
        return False
