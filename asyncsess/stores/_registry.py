"""URL scheme -> store class, imported lazily so that the core imports no driver.

Third-party stores register under the ``asyncsess.stores`` entry-point group,
named by scheme, valued ``"package.module:StoreClass"``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError, MissingDependency
from .base import Store

__all__ = ["STORES", "open_store", "store_class"]

# scheme -> ("module:Class", extra that installs its driver)
STORES: dict[str, tuple[str, str | None]] = {
    "memory": ("asyncsess.stores.memory:MemoryStore", None),
    "file": ("asyncsess.stores.file:FileStore", "file"),
    "redis": ("asyncsess.stores.redis:RedisStore", "redis"),
    "rediss": ("asyncsess.stores.redis:RedisStore", "redis"),
    "redis+cluster": ("asyncsess.stores.redis:RedisStore", "redis"),
    "rediss+cluster": ("asyncsess.stores.redis:RedisStore", "redis"),
    "mongodb": ("asyncsess.stores.mongo:MongoStore", "mongo"),
    "mongodb+srv": ("asyncsess.stores.mongo:MongoStore", "mongo"),
    "sqlite": ("asyncsess.stores.sql:SQLStore", "sql"),
    "postgresql": ("asyncsess.stores.sql:SQLStore", "postgres"),
    "mysql": ("asyncsess.stores.sql:SQLStore", "mysql"),
    "mariadb": ("asyncsess.stores.sql:SQLStore", "mysql"),
}
# SQLAlchemy URLs name their driver after a "+": "postgresql+asyncpg".
_SQL_DIALECTS = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})


def _entry_point_stores() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="asyncsess.stores")}


def store_class(url: str) -> type[Store]:
    """Return the store class that serves ``url``, importing its module now.

    Raises :class:`ConfigurationError` for an unknown scheme (listing the known
    ones) and :class:`MissingDependency` when the store's driver is missing.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        raise ConfigurationError(
            f"store URL {url!r} has no scheme; use e.g. memory://, file:///path, "
            "redis://host, sqlite+aiosqlite:///sessions.db or mongodb://host/db"
        )
    lookup = scheme
    if lookup not in STORES and lookup.split("+", 1)[0] in _SQL_DIALECTS:
        lookup = lookup.split("+", 1)[0]
    if lookup in STORES:
        target, extra = STORES[lookup]
    else:
        plugins = _entry_point_stores()
        if scheme not in plugins:
            known = ", ".join(sorted({*STORES, *plugins}))
            raise ConfigurationError(f"unknown store scheme {scheme!r}; known schemes: {known}")
        target, extra = plugins[scheme], None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or exc.name == module_name:
            raise
        raise MissingDependency(
            f"the {scheme}:// store needs the {exc.name!r} package: "
            f'pip install "asyncsess[{extra}]"'
        ) from exc
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, Store)):
        raise ConfigurationError(f"{target} is not an asyncsess Store subclass")
    return cls


def open_store(url: str, **options: Any) -> Store:
    """Build the store for ``url`` (not yet connected: the manager opens it on first use)."""
    return store_class(url).from_url(url, **options)
