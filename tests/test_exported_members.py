"""The public surface: what ``asyncsess`` exports is exactly ``__all__``, each documented."""

from __future__ import annotations

from types import ModuleType

import asyncsess

EXPECTED = {
    "AccountError", "Accounts", "AsyncsessError", "ConfigurationError", "Decision", "Event",
    "Events", "Subscription", "Telemetry",
    "InvalidPassword", "InvalidUsername", "LoginLimits", "LoginThrottled", "MissingDependency",
    "MigrationIncomplete", "MigrationResult", "PasswordHasher", "RateLimiter", "Record",
    "RecordExists", "Renewal", "Session", "SessionConflict", "SessionInfo", "Stats",
    "SessionManager", "Store", "StoreError", "StoreUnavailable", "UnknownUser", "User",
    "UserExists", "__version__", "migrate", "open_store",
}  # fmt: skip


def test_all_is_exactly_the_public_surface() -> None:
    assert set(asyncsess.__all__) == EXPECTED
    public = {
        n
        for n in dir(asyncsess)
        if not n.startswith("_") and not isinstance(getattr(asyncsess, n), ModuleType)
    }
    assert public == EXPECTED - {"__version__"}


def test_exports_are_documented_and_exceptions_share_one_root() -> None:
    for name in asyncsess.__all__:
        obj = getattr(asyncsess, name)
        if name != "__version__":
            assert obj.__doc__, name
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, asyncsess.AsyncsessError), name


def test_importing_asyncsess_imports_no_driver() -> None:
    import subprocess
    import sys

    drivers = ["redis", "sqlalchemy", "pymongo", "aiosqlite", "asyncpg", "asyncmy", "argon2",
               "aiofiles", "starlette", "aiohttp", "opentelemetry"]  # fmt: skip
    code = f"import sys, asyncsess; print([m for m in {drivers!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
