"""User accounts with argon2id passwords, and login, for :class:`~asyncsess.SessionManager`.

::

    accounts = Accounts("sqlite+aiosqlite:///app.db")   # or memory://, mongodb://, a store
    user = await accounts.create_user("Alice", "correct horse battery staple")
    assert await accounts.authenticate("ALICE", "correct horse battery staple") == user

New passwords need 12 characters (ASVS 2.1.1) and logins are throttled by
default (:mod:`asyncsess.accounts.throttle`: 100 failed attempts per username
an hour, ASVS 2.2.1).

Importing this package imports no database driver and not argon2-cffi; the
backend's driver is imported when :class:`Accounts` is built, argon2-cffi
when a :class:`PasswordHasher` is.
"""

from .core import Accounts as Accounts
from .core import PasswordCheck as PasswordCheck
from .core import UserHook as UserHook
from .devices import DeviceTokens as DeviceTokens
from .hashing import PasswordHasher as PasswordHasher
from .login import login as login
from .throttle import LoginLimits as LoginLimits
from .user import MAX_PASSWORD as MAX_PASSWORD
from .user import MAX_USERNAME as MAX_USERNAME
from .user import MIN_PASSWORD as MIN_PASSWORD
from .user import User as User
from .user import normalize_username as normalize_username

__all__ = [
    "MAX_PASSWORD",
    "MAX_USERNAME",
    "MIN_PASSWORD",
    "Accounts",
    "DeviceTokens",
    "LoginLimits",
    "PasswordCheck",
    "PasswordHasher",
    "User",
    "UserHook",
    "login",
    "normalize_username",
]
