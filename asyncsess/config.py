"""Settings for :class:`~asyncsess.SessionManager` from a mapping or the environment.

Environment variables (all optional):

====================================  ==============================================
``ASYNCSESS_URL``                     store URL (default ``memory://``)
``ASYNCSESS_SECRET``                  secret(s), comma-separated, newest first
``ASYNCSESS_IDLE_TIMEOUT``            sliding idle timeout, seconds
``ASYNCSESS_ABSOLUTE_TIMEOUT``        absolute timeout, seconds
``ASYNCSESS_PRIVACY_MODE``            ``true``/``false`` (default ``true``)
``ASYNCSESS_SWEEP_INTERVAL``          seconds between background sweeps
``ASYNCSESS_RENEW_FRACTION``          renew when less than this fraction of the idle time is left
``ASYNCSESS_MAX_DATA_BYTES``          largest session data as JSON, bytes (``none``: no bound)
``ASYNCSESS_MAX_SESSIONS_PER_USER``   sessions kept per user (``none``: no bound)
``ASYNCSESS_DECODE_CACHE``            decoded sessions kept (``0``: none)
``ASYNCSESS_DECODE_CACHE_BYTES``      about how much memory they may take, bytes
``ASYNCSESS_NEAR_CACHE``              live sessions kept in the near cache (``0``: off)
``ASYNCSESS_NEAR_CACHE_TTL``          the longest a near-cache entry is served, seconds
``ASYNCSESS_TELEMETRY``               ``true``/``false``: report to OpenTelemetry (default:
                                      whenever ``opentelemetry-api`` is installed)
====================================  ==============================================

Mappings take the same settings by keyword name (``store``, ``secret``,
``idle_timeout``, ``max_data_bytes``, ...) and the keys of the managers
asyncsess replaces (``session_expiry_minutes``, ``encryption_key``,
``storage_dir``, ``redis_host``, ``connection_string``, ``db_url``, ...: see
:mod:`asyncsess.compat.legacy`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, overload

from .exceptions import ConfigurationError

__all__ = ["check_fraction", "check_size", "duration", "settings_from_env", "settings_from_mapping"]

_KWARGS = frozenset(
    {
        "store",
        "secret",
        "idle_timeout",
        "absolute_timeout",
        "privacy_mode",
        "sweep_interval",
        "renew_fraction",
        "decode_cache",
        "decode_cache_bytes",
        "max_data_bytes",
        "max_sessions_per_user",
        "near_cache",
        "near_cache_ttl",
        "telemetry",
    }
)
#: Settings that are a size (``int >= 0``); those in _OPTIONAL also take ``none``.
_SIZES = (
    "decode_cache",
    "decode_cache_bytes",
    "max_data_bytes",
    "max_sessions_per_user",
    "near_cache",
)
_OPTIONAL = frozenset({"max_data_bytes", "max_sessions_per_user"})
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


@overload
def check_size(name: str, value: object, *, least: int = 0) -> int: ...
@overload
def check_size(name: str, value: object, *, least: int = 0, optional: bool) -> int | None: ...
def check_size(name: str, value: object, *, least: int = 0, optional: bool = False) -> int | None:
    """Return ``value``, an ``int >= least`` (a bool is not a size; ``None`` if ``optional``).

    Raises :class:`ConfigurationError` naming the setting otherwise.
    """
    if value is None and optional:
        return None
    if type(value) is not int or value < least:
        also = " (or None)" if optional else ""
        raise ConfigurationError(f"{name} must be an int >= {least}{also}, not {value!r}")
    return value


def check_fraction(name: str, value: object) -> float:
    """Return ``value``, a number within [0, 1], or raise :class:`ConfigurationError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigurationError(f"{name} must be within [0, 1], not {value!r}")
    return float(value)


def _size(value: str, name: str) -> int | None:
    if name in _OPTIONAL and value.lower() == "none":
        return None
    try:
        return check_size(f"ASYNCSESS_{name.upper()}", int(value))
    except ValueError:
        none = " or none" if name in _OPTIONAL else ""
        raise ConfigurationError(
            f"ASYNCSESS_{name.upper()} must be a whole number >= 0{none}, not {value!r}"
        ) from None


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def settings_from_mapping(config: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a configuration mapping into ``SessionManager`` keyword arguments.

    Takes the keyword names and the replaced managers' keys
    (:mod:`asyncsess.compat.legacy`); a current key wins over a legacy one.
    Raises :class:`ConfigurationError` naming any key it does not know.
    """
    from .compat.legacy import LEGACY_KEYS, legacy_settings  # compat builds on this package

    unknown = set(config) - _KWARGS - LEGACY_KEYS
    if unknown:
        known = ", ".join(sorted(_KWARGS | LEGACY_KEYS))
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; known: {known}")
    out: dict[str, Any] = {k: config[k] for k in _KWARGS if k in config}
    legacy = {k: v for k, v in config.items() if k in LEGACY_KEYS}
    for name, value in legacy_settings(legacy, duration).items():
        out.setdefault(name, value)
    if "privacy_mode" in out:
        out["privacy_mode"] = _flag(out["privacy_mode"], "privacy_mode")
    if isinstance(out.get("telemetry"), str):  # else True, False, None or a Telemetry
        out["telemetry"] = _flag(out["telemetry"], "telemetry")
    return out


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read ``ASYNCSESS_*`` variables into ``SessionManager`` keyword arguments."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    if url := env.get("ASYNCSESS_URL"):
        out["store"] = url
    if secret := env.get("ASYNCSESS_SECRET"):
        out["secret"] = [s.strip() for s in secret.split(",") if s.strip()]
    for name in ("idle_timeout", "absolute_timeout", "sweep_interval", "near_cache_ttl"):
        if value := env.get(f"ASYNCSESS_{name.upper()}"):
            out[name] = duration(value, f"ASYNCSESS_{name.upper()}")
    for name in ("privacy_mode", "telemetry"):
        if value := env.get(f"ASYNCSESS_{name.upper()}"):
            out[name] = _flag(value, f"ASYNCSESS_{name.upper()}")
    for name in _SIZES:
        if value := env.get(f"ASYNCSESS_{name.upper()}"):
            out[name] = _size(value.strip(), name)
    if value := env.get("ASYNCSESS_RENEW_FRACTION"):
        try:
            out["renew_fraction"] = float(value)
        except ValueError:
            raise ConfigurationError(
                f"ASYNCSESS_RENEW_FRACTION must be a number, not {value!r}"
            ) from None
    return out
