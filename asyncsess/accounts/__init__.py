"""User accounts with argon2id passwords, and login, for :class:`~asyncsess.SessionManager`.

::

    accounts = Accounts("sqlite+aiosqlite:///app.db")   # or memory://, mongodb://, a store
    user = await accounts.create_user("Alice", "correct horse battery staple")
    assert await accounts.authenticate("ALICE", "correct horse battery staple") == user

Importing this package imports no database driver and not argon2-cffi; the
backend's driver is imported when :class:`Accounts` is built, argon2-cffi
when a :class:`PasswordHasher` is.
"""

from .core import Accounts as Accounts
from .core import UserHook as UserHook
from .hashing import PasswordHasher as PasswordHasher
from .login import login as login
from .user import MAX_PASSWORD as MAX_PASSWORD
from .user import MAX_USERNAME as MAX_USERNAME
from .user import User as User
from .user import normalize_username as normalize_username

__all__ = [
    "MAX_PASSWORD",
    "MAX_USERNAME",
    "Accounts",
    "PasswordHasher",
    "User",
    "UserHook",
    "login",
    "normalize_username",
]
