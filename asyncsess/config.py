"""Settings for :class:`~asyncsess.SessionManager` from a mapping or the environment.

Environment variables (all optional):

=============================  ==============================================
``ASYNCSESS_URL``              store URL (default ``memory://``)
``ASYNCSESS_SECRET``           secret(s), comma-separated, newest first
``ASYNCSESS_IDLE_TIMEOUT``     sliding idle timeout, seconds
``ASYNCSESS_ABSOLUTE_TIMEOUT`` absolute timeout, seconds
``ASYNCSESS_PRIVACY_MODE``     ``true``/``false`` (default ``true``)
``ASYNCSESS_SWEEP_INTERVAL``   seconds between background sweeps
``ASYNCSESS_RENEW_FRACTION``   renew when less than this fraction of the idle time is left
=============================  ==============================================

Mappings take the same settings by keyword name (``store``, ``secret``,
``idle_timeout``, ...) and the keys of the managers asyncsess replaces:
``session_expiry_minutes``, ``privacy_mode``, ``storage_dir``,
``encryption_key``, ``redis_host``, ``redis_port``, ``redis_db``,
``redis_password``, ``connection_string``, ``db_name``, ``collection_name``
(the MongoDB database replaces any in the connection string's path; its
options are kept) and ``db_url`` (an SQLAlchemy URL, as the older SQL manager
took).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .exceptions import ConfigurationError

__all__ = ["check_size", "duration", "settings_from_env", "settings_from_mapping"]

_KWARGS = frozenset(
    {
        "store",
        "secret",
        "idle_timeout",
        "absolute_timeout",
        "privacy_mode",
        "sweep_interval",
        "renew_fraction",
    }
)
_LEGACY = frozenset(
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
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def duration(value: object, name: str) -> float:
    """Return ``value`` (a ``timedelta`` or a number of seconds) as positive seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}") from None
    else:
        raise ConfigurationError(
            f"{name} must be a timedelta or a number of seconds, not {type(value).__name__}"
        )
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigurationError(f"{name} must be a positive, finite duration, not {value!r}")
    return seconds


def check_size(name: str, value: object) -> int:
    """Return ``value``, an ``int >= 0`` (a bool is not a size), or raise ConfigurationError."""
    if type(value) is not int or value < 0:
        raise ConfigurationError(f"{name} must be an int >= 0, not {value!r}")
    return value


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def _legacy_store(config: Mapping[str, Any]) -> str | None:
    if "storage_dir" in config:
        return Path(os.path.expanduser(str(config["storage_dir"]))).resolve().as_uri()
    if "db_url" in config:
        return str(config["db_url"])
    if "connection_string" in config or "db_name" in config:
        parts = urlsplit(str(config.get("connection_string", "mongodb://localhost:27017/")))
        db = quote(str(config.get("db_name", "session_db")), safe="")
        collection = f"collection={quote(str(config.get('collection_name', 'sessions')), safe='')}"
        query = f"{parts.query}&{collection}" if parts.query else collection
        return urlunsplit(parts._replace(path=f"/{db}", query=query))
    if any(k.startswith("redis_") for k in config):
        password = config.get("redis_password")
        auth = f":{quote(str(password), safe='')}@" if password else ""
        host = config.get("redis_host", "localhost")
        port, db_number = int(config.get("redis_port", 6379)), int(config.get("redis_db", 0))
        return f"redis://{auth}{host}:{port}/{db_number}"
    return None


def settings_from_mapping(config: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a configuration mapping into ``SessionManager`` keyword arguments.

    Raises :class:`ConfigurationError` naming any key it does not know.
    """
    unknown = set(config) - _KWARGS - _LEGACY
    if unknown:
        known = ", ".join(sorted(_KWARGS | _LEGACY))
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; known: {known}")
    out: dict[str, Any] = {k: config[k] for k in _KWARGS if k in config}
    if "store" not in out and (store := _legacy_store(config)) is not None:
        out["store"] = store
    if "secret" not in out and config.get("encryption_key"):
        out["secret"] = config["encryption_key"]
    if "idle_timeout" not in out and "session_expiry_minutes" in config:
        out["idle_timeout"] = timedelta(
            minutes=duration(config["session_expiry_minutes"], "session_expiry_minutes")
        )
    if "privacy_mode" in out:
        out["privacy_mode"] = _flag(out["privacy_mode"], "privacy_mode")
    return out


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read ``ASYNCSESS_*`` variables into ``SessionManager`` keyword arguments."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    if url := env.get("ASYNCSESS_URL"):
        out["store"] = url
    if secret := env.get("ASYNCSESS_SECRET"):
        out["secret"] = [s.strip() for s in secret.split(",") if s.strip()]
    for name in ("idle_timeout", "absolute_timeout", "sweep_interval"):
        if value := env.get(f"ASYNCSESS_{name.upper()}"):
            out[name] = duration(value, f"ASYNCSESS_{name.upper()}")
    if value := env.get("ASYNCSESS_PRIVACY_MODE"):
        out["privacy_mode"] = _flag(value, "ASYNCSESS_PRIVACY_MODE")
    if value := env.get("ASYNCSESS_RENEW_FRACTION"):
        try:
            out["renew_fraction"] = float(value)
        except ValueError:
            raise ConfigurationError(
                f"ASYNCSESS_RENEW_FRACTION must be a number, not {value!r}"
            ) from None
    return out
