"""Login throttling: failed attempts per username, per device and per client.

:class:`LoginLimits` is on by default in every :class:`~asyncsess.accounts.Accounts`
and so in :meth:`SessionManager.login <asyncsess.SessionManager.login>`,
:meth:`Accounts.authenticate <asyncsess.accounts.Accounts.authenticate>` and
:meth:`Accounts.change_password <asyncsess.accounts.Accounts.change_password>`:

- ``username``: ``"100/hour"``, at most 100 failed attempts on one normalised
  username in any hour, counted whether or not the user exists (OWASP ASVS
  4.0.3 V2.2.1; the count reveals nothing).
- ``device``: ``"20/hour"``, used *instead of* the username limit when the
  attempt carries a valid device token for that username (OWASP's device
  cookies, :mod:`asyncsess.accounts.devices`): an attacker who keeps a
  username's limit exhausted does not lock out its owner's own browsers.
- ``client``: ``"1000/hour"``, failed attempts per client address, IPv4 per
  address and IPv6 per ``/64`` (one host or site usually holds a whole /64),
  so one client spraying many usernames is stopped too. An office behind one
  NAT is not: successes are never counted.

Each attempt is counted before the password is checked (so concurrent
guesses cannot overshoot a limit) and taken back (:meth:`RateLimiter.refund
<asyncsess.RateLimiter.refund>`) if it succeeds or fails for another reason
than a wrong password: only failures count. Over a limit,
:class:`~asyncsess.LoginThrottled` is raised with ``scope`` ``"client"``,
``"username"`` or ``"device"`` before any hashing.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Self, TypeVar

from ..exceptions import AsyncsessError, ConfigurationError, LoginThrottled
from ..ratelimit import Decision, RateLimiter

__all__ = [
    "DEFAULT_CLIENT_RATE",
    "DEFAULT_DEVICE_RATE",
    "DEFAULT_USERNAME_RATE",
    "LoginLimits",
    "client_key",
]

T = TypeVar("T")

#: Failed attempts per normalised username (ASVS 2.2.1: at most 100 an hour).
DEFAULT_USERNAME_RATE = "100/hour"
#: Failed attempts per device token that proved the password before.
DEFAULT_DEVICE_RATE = "20/hour"
#: Failed attempts per client address (IPv6: per /64).
DEFAULT_CLIENT_RATE = "1000/hour"

Limiter = RateLimiter | str | None


def client_key(client: str) -> str:
    """The limiter key of a client address: IPv4 as is, IPv6 by its /64, anything else verbatim."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return f"client:{client}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"client:{address.ipv4_mapped}"
        network = ipaddress.IPv6Network((int(address) >> 64 << 64, 64))
        return f"client:{network}"
    return f"client:{address}"


def _limiter(value: Limiter, name: str, clock: Callable[[], float] | None) -> RateLimiter | None:
    if value is None or isinstance(value, RateLimiter):
        return value
    if isinstance(value, str):
        return RateLimiter(value, clock=clock)
    raise ConfigurationError(f"{name} must be a RateLimiter, a rate str or None, not {value!r}")


class LoginLimits:
    """The three login limits; each a :class:`RateLimiter`, a rate (memory limiter) or ``None``.

    ``clock`` (seconds) goes to the limiters built here from a rate. For
    several processes, pass Redis limiters (one ``secret`` for all).
    """

    def __init__(
        self,
        *,
        username: Limiter = DEFAULT_USERNAME_RATE,
        device: Limiter = DEFAULT_DEVICE_RATE,
        client: Limiter = DEFAULT_CLIENT_RATE,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.username = _limiter(username, "username", clock)
        self.device = _limiter(device, "device", clock)
        self.client = _limiter(client, "client", clock)

    @classmethod
    def off(cls) -> Self:
        """No limits at all (tests, or an app that throttles in front of asyncsess)."""
        return cls(username=None, device=None, client=None)

    def __repr__(self) -> str:
        return f"LoginLimits(username={self.username}, device={self.device}, client={self.client})"

    def replace(
        self, *, username: RateLimiter | None = None, client: RateLimiter | None = None
    ) -> LoginLimits:
        """A copy with the given limiters in place of these (``None``: keep this one)."""
        copy = LoginLimits.off()
        copy.username = username if username is not None else self.username
        copy.device = self.device
        copy.client = client if client is not None else self.client
        return copy

    def limiters(self) -> list[RateLimiter]:
        """The distinct limiters in use (for their cleanup tasks)."""
        found = (self.username, self.device, self.client)
        return list({id(x): x for x in found if x is not None}.values())

    async def guard(
        self,
        name: str,
        check: Callable[[], Awaitable[T | None]],
        *,
        client: str | None = None,
        device: str | None = None,
    ) -> T | None:
        """Count an attempt on ``name`` and run ``check``; keep the count only if it gives ``None``.

        ``device`` is the id of a verified device token of ``name``: the device's
        limit then replaces the username's. Raises :class:`~asyncsess.LoginThrottled`.
        """
        steps: list[tuple[str, RateLimiter | None, str]] = []
        if client is not None:
            steps.append(("client", self.client, client_key(client)))
        if device is not None:
            steps.append(("device", self.device, f"device:{device}"))
        else:
            steps.append(("username", self.username, f"user:{name}"))
        counted: list[tuple[RateLimiter, str, Decision]] = []
        try:
            for scope, limiter, key in steps:
                if limiter is None:
                    continue
                decision = await limiter.hit(key)
                if not decision.allowed:
                    raise LoginThrottled(decision.retry_after, scope)
                counted.append((limiter, key, decision))
            result = await check()
        except AsyncsessError:  # throttled, busy or a store failure: no password was refused
            with contextlib.suppress(AsyncsessError):
                await _refund(counted)
            raise
        if result is not None:
            await _refund(counted)
        return result


async def _refund(counted: list[tuple[RateLimiter, str, Decision]]) -> None:
    for limiter, key, decision in counted:
        await limiter.refund(key, decision)
