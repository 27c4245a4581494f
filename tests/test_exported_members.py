"""The public surface: what ``asyncsess`` exports is exactly ``__all__``, each documented."""

from __future__ import annotations

import asyncsess

EXPECTED = {
    "AccountError",
    "AsyncsessError",
    "ConfigurationError",
    "InvalidPassword",
    "InvalidUsername",
    "LoginThrottled",
    "MissingDependency",
    "Record",
    "Renewal",
    "Session",
    "SessionConflict",
    "SessionInfo",
    "SessionManager",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownUser",
    "UserExists",
    "__version__",
    "open_store",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(asyncsess.__all__) == EXPECTED
    public = {n for n in dir(asyncsess) if not n.startswith("_")} - {
        "config",
        "exceptions",
        "manager",
        "sealing",
        "session",
        "stores",
        "tokens",
    }
    assert public == EXPECTED - {"__version__"}


def test_exports_are_documented_and_exceptions_share_one_root() -> None:
    for name in asyncsess.__all__:
        obj = getattr(asyncsess, name)
        if name != "__version__":
            assert obj.__doc__, name
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, asyncsess.AsyncsessError), name
