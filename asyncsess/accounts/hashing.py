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
bounds the memory they use.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Any, Self

import anyio

from ..exceptions import ConfigurationError, MissingDependency

if TYPE_CHECKING:
    import argon2

__all__ = ["PasswordHasher"]


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
            'password hashing needs argon2-cffi: pip install "asyncsess[accounts]"'
        ) from exc
    return argon2


class PasswordHasher:
    """Argon2id hashing, verification and rehash checks, off the event loop.

    Every ``*_cost`` argument is argon2's own (``memory_cost`` in KiB).
    ``max_concurrency`` bounds how many hashes run at once.
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
        self._dummy: str | None = None
        self._dummy_lock = anyio.Lock()

    @classmethod
    def rfc9106_low_memory(cls, *, max_concurrency: int | None = None) -> Self:
        """RFC 9106 §4's second recommended option: t=3, m=64 MiB, p=4."""
        return cls(
            time_cost=3,
            memory_cost=64 * 1024,
            parallelism=4,
            max_concurrency=max_concurrency,
        )

    def __repr__(self) -> str:
        h = self._hasher
        return (
            f"PasswordHasher(argon2id, t={h.time_cost}, m={h.memory_cost} KiB, "
            f"p={h.parallelism}, max_concurrency={self.max_concurrency})"
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

    async def hash(self, password: str) -> str:
        """Return the argon2id PHC string (``$argon2id$v=19$m=...``) of ``password``."""
        encoded: str = await anyio.to_thread.run_sync(
            self._hasher.hash, password, limiter=self.limiter
        )
        return encoded

    def _verify(self, encoded: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(encoded, password))
        except (self._mismatch, self._invalid):
            return False

    async def verify(self, encoded: str, password: str) -> bool:
        """Whether ``password`` matches ``encoded``; a malformed hash is ``False``."""
        ok: bool = await anyio.to_thread.run_sync(
            self._verify, encoded, password, limiter=self.limiter
        )
        return ok

    def needs_rehash(self, encoded: str) -> bool:
        """Whether ``encoded`` was made with other parameters (or another argon2 type)."""
        try:
            return bool(self._hasher.check_needs_rehash(encoded))
        except (self._invalid, ValueError):
            return True

    async def prepare(self) -> None:
        """Make the dummy hash of :meth:`dummy_verify` now (else its first call makes it)."""
        if self._dummy is None:
            async with self._dummy_lock:
                if self._dummy is None:
                    self._dummy = await self.hash(secrets.token_urlsafe(32))

    async def dummy_verify(self, password: str) -> bool:
        """Do the work of a :meth:`verify` against a hash nobody has; always ``False``.

        Used for unknown users so that they cost as much as a wrong password.
        The dummy hash is made once (:meth:`prepare`), with the current parameters.
        """
        await self.prepare()
        assert self._dummy is not None
        await self.verify(self._dummy, password)
        return False
