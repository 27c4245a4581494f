"""Device tokens: OWASP's device cookies against victim lock-out.

After a successful login, :meth:`SessionManager.device_token
<asyncsess.SessionManager.device_token>` issues a token the web integrations
keep in a long-lived cookie. A later login for the same username that
presents it is counted against that device's own allowance instead of the
username's (:mod:`asyncsess.accounts.throttle`), so an attacker who keeps a
username throttled does not lock its owner out of the browsers they used
before.

A token is ``<nonce>.<expiry>.<mac>``: a random 128-bit nonce (the device's
identity for its limit), the expiry in seconds since the epoch, and an
HMAC-SHA-256 over both and the normalised username, under a key derived
from the manager's secret (any of the configured secrets verifies, the
newest signs). It carries no username. A token for another username, expired,
forged or malformed is ignored (the username's limit applies).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence

__all__ = ["DEFAULT_DEVICE_TTL", "DeviceTokens"]

#: How long a device token is good for (seconds): 30 days.
DEFAULT_DEVICE_TTL = 30 * 86400.0
#: The key of in-process managers without a secret (their sessions die with the process too).
_PROCESS_KEY = secrets.token_bytes(32)
_MAX_TOKEN = 128


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DeviceTokens:
    """Issue and check device tokens under ``secrets`` (newest first)."""

    def __init__(
        self,
        secrets: Sequence[bytes],
        *,
        ttl: float = DEFAULT_DEVICE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = [hmac.digest(s, b"asyncsess device tokens v1", "sha256") for s in secrets]
        if not self._keys:
            raise ValueError("device tokens need at least one secret")
        self.ttl = ttl
        self._clock = clock

    @classmethod
    def for_process(cls, *, clock: Callable[[], float] = time.time) -> DeviceTokens:
        """Tokens under a random key made at import: good while this process runs."""
        return cls([_PROCESS_KEY], clock=clock)

    @staticmethod
    def _mac(key: bytes, nonce: str, expires: str, name: str) -> str:
        message = f"{nonce}\x00{expires}\x00{name}".encode("utf-8", "surrogatepass")
        return _b64(hmac.new(key, message, hashlib.sha256).digest())

    def issue(self, name: str) -> str:
        """A new token for the normalised username ``name``."""
        nonce = secrets.token_urlsafe(16)
        expires = str(int(self._clock() + self.ttl))
        return f"{nonce}.{expires}.{self._mac(self._keys[0], nonce, expires, name)}"

    def check(self, token: object, name: str) -> str | None:
        """The device id (nonce) if ``token`` is a live token of ``name``, else ``None``."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN or not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        nonce, expires, mac = parts
        if int(expires) <= self._clock():
            return None
        for key in self._keys:
            if hmac.compare_digest(mac.encode(), self._mac(key, nonce, expires, name).encode()):
                return nonce
        return None
