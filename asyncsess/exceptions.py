"""Exceptions raised by asyncsess.

Every error asyncsess raises derives from :class:`AsyncsessError`; driver
errors are mapped to the most specific class here and chained (``from exc``)::

    AsyncsessError
    ├── ConfigurationError        a setting is missing or wrong: the message says what to fix
    │   └── MissingDependency     a store's driver is not installed: the message names the extra
    ├── StoreError                the store could not do what was asked
    │   ├── StoreUnavailable      the store did not answer in time, or refused the connection
    │   └── RecordExists          a store's insert found the key taken (for store authors:
    │                             ``asyncsess.stores.base.RecordExists``)
    ├── SessionConflict           a versioned update lost against a concurrent one
    ├── MigrationIncomplete       ``migrate`` left the target with fewer live sessions than
    │                             the source (created meanwhile): run it again
    └── AccountError              an accounts operation was refused
        ├── InvalidUsername       the username is empty, too long or has control characters
        ├── InvalidPassword       the password is empty, too long, too short (new), the
        │                         username, or refused by the app's password check
        ├── UserExists            the (normalised) username is taken
        ├── UnknownUser           no user has that username
        └── LoginThrottled        too many login attempts (``scope``: client, username,
                                  device) or hashes queued (busy): wait ``retry_after`` s

``validate`` never raises for a bad token: it returns ``None``. A store failure
is never turned into a valid session: it raises :class:`StoreUnavailable`
(fail closed).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .migration import MigrationResult

__all__ = [
    "AccountError",
    "AsyncsessError",
    "ConfigurationError",
    "InvalidPassword",
    "InvalidUsername",
    "LoginThrottled",
    "MigrationIncomplete",
    "MissingDependency",
    "SessionConflict",
    "StoreError",
    "StoreUnavailable",
    "UnknownUser",
    "UserExists",
]


class AsyncsessError(Exception):
    """Root of every exception asyncsess raises."""


class ConfigurationError(AsyncsessError, ValueError):
    """A setting is missing or invalid; the message says what to change."""


class MissingDependency(ConfigurationError, ImportError):
    """A store's driver is not installed; the message names the extra to install."""


class StoreError(AsyncsessError):
    """The store failed to carry out an operation."""


class StoreUnavailable(StoreError):
    """The store could not be reached, refused the connection, timed out, or answered
    that it cannot serve for now (starting up, shutting down, out of memory, read-only
    after a failover): worth trying again later. Web apps answer 503."""


class SessionConflict(AsyncsessError):
    """A versioned ``update`` found the session at another version than expected.

    Also raised, with ``attempts`` set, when an unversioned ``update`` or a
    ``rotate`` lost that many times in a row to concurrent changes of a
    session that still exists (``actual`` is then the version last seen).
    """

    def __init__(self, expected: int, actual: int | None, *, attempts: int | None = None) -> None:
        self.expected = expected
        self.actual = actual
        self.attempts = attempts
        if attempts is not None:
            message = (
                f"the session kept changing: {attempts} attempts in a row lost to concurrent "
                f"changes (last seen at version {expected}); retry later"
            )
        else:
            found = "no longer exists" if actual is None else f"is at version {actual}"
            message = (
                f"session update expected version {expected} but the session {found}; "
                "validate again and retry with the new version"
            )
        super().__init__(message)


class MigrationIncomplete(AsyncsessError):
    """The target holds fewer live sessions than the source after a :func:`asyncsess.migrate` run.

    Sessions were created or renewed in the source while it was copied; run
    the migration again (it resumes). ``result`` is what the run did.
    """

    def __init__(self, result: MigrationResult) -> None:
        self.result = result
        super().__init__(
            f"the target holds {result.target_live} live sessions, the source "
            f"{result.source_live}: sessions were created or renewed in the source during "
            "the copy; run the migration again (it resumes: what is there is skipped)"
        )


class AccountError(AsyncsessError):
    """An accounts operation was refused."""


class InvalidUsername(AccountError, ValueError):
    """The username is not acceptable (empty, too long, control characters, not a str)."""


class InvalidPassword(AccountError, ValueError):
    """The password is not acceptable (empty, too long, not a str; a new one also too short,
    the username, or refused by ``Accounts(password_check=...)``)."""


class UserExists(AccountError):
    """A user with this (normalised) username already exists."""


class UnknownUser(AccountError, LookupError):
    """No user has this username."""


class LoginThrottled(AccountError):
    """Too many login attempts, or passwords being checked; retry after ``retry_after`` s.

    ``scope`` is ``"client"``, ``"username"`` or ``"device"`` (a limit of
    :class:`~asyncsess.accounts.LoginLimits`), or ``"busy"`` (the password
    hasher's queue is full).
    """

    def __init__(self, retry_after: float, scope: str) -> None:
        self.retry_after = retry_after
        self.scope = scope
        what = (
            "too many passwords are being checked at once"
            if scope == "busy"
            else f"too many login attempts for this {scope}"
        )
        super().__init__(f"{what}; retry in {retry_after:.1f} s")


def store_failure(exc: Exception) -> StoreError:
    """The asyncsess error for a store's raw exception (chain it: ``raise ... from exc``)."""
    kind = StoreUnavailable if isinstance(exc, OSError | TimeoutError) else StoreError
    return kind(f"session store failed: {type(exc).__name__}: {exc}")


class _FailClosed:
    """``with fail_closed:`` maps any non-asyncsess exception to a StoreError, chained."""

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
        raise store_failure(exc) from exc


fail_closed = _FailClosed()
