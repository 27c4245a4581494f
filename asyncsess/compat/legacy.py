"""The configuration keys of the managers asyncsess replaces, as ``SessionManager`` settings.

=========================  ==================================================
key                        becomes
=========================  ==================================================
``session_expiry_minutes`` ``idle_timeout``
``encryption_key``         ``secret``
``storage_dir``            a ``file://`` store (``~`` expanded, made absolute)
``db_url``                 that SQLAlchemy URL
``redis_host``, ``_port``, a ``redis://`` URL (defaults ``localhost``, 6379,
``_db``, ``_password``     0, none)
``connection_string``      a ``mongodb://`` or ``mongodb+srv://`` string gets
                           ``db_name`` (default ``session_db``) as its database
                           and ``collection_name`` (``sessions``) as its
                           collection, other options kept; any other URL is
                           the store URL as it is
``db_name``,               with a MongoDB ``connection_string`` (or none:
``collection_name``        ``mongodb://localhost:27017/``) only
=========================  ==================================================

:func:`asyncsess.config.settings_from_mapping` (so ``SessionManager.from_config``)
accepts these keys beside the current ones and translates them here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from ..exceptions import ConfigurationError

__all__ = ["LEGACY_KEYS", "legacy_settings"]

LEGACY_KEYS: Final = frozenset(
    {
        "session_expiry_minutes",
        "storage_dir",
        "encryption_key",
        "redis_host",
        "redis_port",
        "redis_db",
        "redis_password",
        "connection_string",
        "db_name",
        "collection_name",
        "db_url",
    }
)
_MONGO_DEFAULT: Final = "mongodb://localhost:27017/"


def _mongo_url(config: Mapping[str, Any]) -> str:
    parts = urlsplit(str(config.get("connection_string", _MONGO_DEFAULT)))
    db = quote(str(config.get("db_name", "session_db")), safe="")
    collection = f"collection={quote(str(config.get('collection_name', 'sessions')), safe='')}"
    query = f"{parts.query}&{collection}" if parts.query else collection
    return urlunsplit(parts._replace(path=f"/{db}", query=query))


def _legacy_store(config: Mapping[str, Any]) -> str | None:
    if "storage_dir" in config:
        return Path(os.path.expanduser(str(config["storage_dir"]))).resolve().as_uri()
    if "db_url" in config:
        return str(config["db_url"])
    if "connection_string" in config or "db_name" in config or "collection_name" in config:
        url = str(config.get("connection_string", _MONGO_DEFAULT))
        if urlsplit(url).scheme.lower() in ("mongodb", "mongodb+srv"):
            return _mongo_url(config)
        if "db_name" in config or "collection_name" in config:
            raise ConfigurationError(
                "db_name and collection_name apply to a mongodb:// connection_string, not to "
                f"{urlsplit(url).scheme}://; put the database in the URL instead"
            )
        return url  # any other store URL (SQL, Redis...) as it is
    if any(k.startswith("redis_") for k in config):
        password = config.get("redis_password")
        auth = f":{quote(str(password), safe='')}@" if password else ""
        host = config.get("redis_host", "localhost")
        port, db_number = int(config.get("redis_port", 6379)), int(config.get("redis_db", 0))
        return f"redis://{auth}{host}:{port}/{db_number}"
    return None


def legacy_settings(config: Mapping[str, Any], duration: Any) -> dict[str, Any]:
    """The ``SessionManager`` settings that the legacy keys in ``config`` stand for.

    ``duration`` checks a number of seconds (:func:`asyncsess.config.duration`).
    """
    out: dict[str, Any] = {}
    if (store := _legacy_store(config)) is not None:
        out["store"] = store
    if config.get("encryption_key"):
        out["secret"] = config["encryption_key"]
    if "session_expiry_minutes" in config:
        minutes = duration(config["session_expiry_minutes"], "session_expiry_minutes")
        out["idle_timeout"] = timedelta(minutes=minutes)
    return out
