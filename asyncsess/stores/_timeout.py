"""The one check of a backend's ``timeout`` option, shared by the stores, the accounts
backends and the rate limiter's Redis backend."""

from __future__ import annotations

from datetime import timedelta

from ..exceptions import ConfigurationError

__all__ = ["check_timeout"]


def check_timeout(timeout: object, what: str, option: str = "timeout") -> float:
    """``timeout`` as float seconds: a number, a numeric string (from a URL query) or a
    :class:`~datetime.timedelta`, above zero; anything else is a
    :class:`~asyncsess.ConfigurationError` naming ``what`` it configures and the
    ``option``."""
    seconds: object = timeout
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, str):
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigurationError(
            f"{what} {option} must be a number of seconds above 0 (or a timedelta), not {timeout!r}"
        )
    return float(seconds)
