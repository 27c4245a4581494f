"""Sealing at rest: AES-256-GCM under a key derived (HKDF-SHA256) from the token and a secret.

Several secrets may be configured, newest first: the newest seals, every one
opens (each sealed blob names its secret by a 4-byte fingerprint). User ids
are replaced in stores by a keyed hash (HMAC-SHA256) so that sessions can be
listed and revoked per user without the store learning who the user is.

Sealed layout: ``b"\\x02" | key id (4) | nonce (12) | ciphertext and tag``. Format 2
seals under the same key derivation as format 1; the caller's associated data
changed (it now binds a record's lifetime and version, see ``asyncsess._codec``),
so blobs of format 1 are refused rather than tried.

Derivations, all HMAC-SHA256 (``tests/test_sealing_vectors.py`` pins each):

- key id: ``SHA-256(b"asyncsess key id\\x00" + secret)[:4]``;
- per-secret PRK: ``HMAC(key=b"asyncsess seal v1", msg=secret)``;
- per-token AES key: HKDF-Expand(PRK, ``b"asyncsess token v1\\x00" + token``, 32),
  which for 32 bytes is the single block ``HMAC(PRK, info + b"\\x01")``: computed
  as that one ``hmac.digest`` call;
- user reference key: HKDF-SHA256(secret, salt none, info ``b"asyncsess user ref v1"``);
  a user reference is ``HMAC(user key, user_id as UTF-8)`` in hex.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .exceptions import ConfigurationError

__all__ = ["MIN_SECRET_BYTES", "Keyring", "SealError", "normalize_secrets"]

MIN_SECRET_BYTES = 32
_FORMAT = b"\x02"
_NONCE = 12
_HEADER = 1 + 4 + _NONCE
_ADVICE = (
    'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))" '
    "and pass it as secret=... or set ASYNCSESS_SECRET"
)


class SealError(Exception):
    """A sealed blob could not be opened: tampered, truncated or sealed under an unknown secret."""


def normalize_secrets(secret: str | bytes | Sequence[str | bytes] | None) -> list[bytes]:
    """Turn the ``secret`` setting into a list of byte strings, newest first.

    Raises :class:`ConfigurationError` for a secret shorter than 32 bytes or of another type.
    """
    if secret is None:
        return []
    items: Sequence[str | bytes] = [secret] if isinstance(secret, str | bytes) else secret
    out: list[bytes] = []
    for item in items:
        if isinstance(item, str):
            item = item.encode("utf-8")
        if not isinstance(item, bytes):
            raise ConfigurationError(
                f"secret must be str or bytes (or a sequence of them), not {type(item).__name__}"
            )
        if len(item) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"a secret must be at least {MIN_SECRET_BYTES} bytes long; {_ADVICE}"
            )
        out.append(item)
    return out


class _Secret:
    __slots__ = ("key_id", "prk", "user_key")

    def __init__(self, secret: bytes) -> None:
        self.key_id = hashlib.sha256(b"asyncsess key id\x00" + secret).digest()[:4]
        self.prk = hmac.digest(b"asyncsess seal v1", secret, "sha256")
        self.user_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"asyncsess user ref v1"
        ).derive(secret)


class Keyring:
    """The configured secrets: seals with the newest, opens with any."""

    __slots__ = ("_by_id", "_secrets")

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ConfigurationError(f"sealing needs at least one secret; {_ADVICE}")
        self._secrets = [_Secret(s) for s in secrets]
        self._by_id = {s.key_id: s for s in reversed(self._secrets)}

    def __repr__(self) -> str:
        return f"Keyring(<{len(self._secrets)} secret(s) hidden>)"

    @staticmethod
    def _token_key(secret: _Secret, token: str) -> AESGCM:
        # HKDF with the extract step (over the secret) done once per secret; the
        # token is the per-session context of the expand step, whose one block
        # (32 bytes) is HMAC(PRK, info | 0x01).
        info = b"asyncsess token v1\x00" + token.encode() + b"\x01"
        return AESGCM(hmac.digest(secret.prk, info, "sha256"))

    def seal(self, token: str, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` for the session of ``token``, bound to ``aad``."""
        secret = self._secrets[0]
        nonce = os.urandom(_NONCE)
        sealed = self._token_key(secret, token).encrypt(nonce, plaintext, aad)
        return b"".join((_FORMAT, secret.key_id, nonce, sealed))

    def open(self, token: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob made by :meth:`seal`; raise :class:`SealError` if it does not open."""
        if len(blob) < _HEADER + 16 or blob[:1] != _FORMAT:
            raise SealError(f"not a sealed session record of format {_FORMAT[0]}")
        secret = self._by_id.get(blob[1:5])
        if secret is None:
            raise SealError("sealed under a secret that is no longer configured")
        try:
            return self._token_key(secret, token).decrypt(blob[5:_HEADER], blob[_HEADER:], aad)
        except InvalidTag as exc:
            raise SealError("sealed record failed authentication") from exc

    @property
    def rotating(self) -> bool:
        """Whether more than one secret is configured (older ones only open)."""
        return len(self._secrets) > 1

    def sealed_with_newest(self, blob: bytes) -> bool:
        """Tell whether ``blob`` (made by :meth:`seal`) names the newest secret."""
        return blob[1:5] == self._secrets[0].key_id

    def user_refs(self, user_id: str) -> list[str]:
        """Return the keyed hashes of ``user_id`` under every secret, newest first."""
        raw = user_id.encode("utf-8")
        return list(
            dict.fromkeys(hmac.digest(s.user_key, raw, "sha256").hex() for s in self._secrets)
        )
