"""Session tokens: generation, a shape check that needs no I/O, and the stored hash.

A token is 32 bytes (256 bits) from :mod:`secrets`, base64url-encoded without
padding: always 43 characters. Stores only ever see :func:`token_key`, the
SHA-256 of the token, so a copy of a store cannot be replayed as tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from typing import TypeGuard

__all__ = [
    "TOKEN_BYTES",
    "TOKEN_LENGTH",
    "hash_key",
    "is_well_formed",
    "lookup_key",
    "new_token",
    "token_key",
]

TOKEN_BYTES = 32
TOKEN_LENGTH = 43

_ALPHABET = (string.ascii_letters + string.digits + "-_").encode()
# Each byte to "." if it is in the alphabet, else "!": one table pass checks a token.
_CLASSES = bytes(0x2E if byte in _ALPHABET else 0x21 for byte in range(256))
_WELL_FORMED = b"." * TOKEN_LENGTH
# 32 bytes take 42 full base64 characters plus one holding the last 4 bits, so
# the final character is always one of the 16 whose low two bits are zero.
_LAST = frozenset(b"AEIMQUYcgkosw048")
_sha256 = hashlib.sha256


def new_token() -> str:
    """Return a fresh URL-safe token carrying 256 random bits."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def lookup_key(token: object) -> str | None:
    """Return the store key of ``token`` if it has the exact shape of a token, else ``None``.

    The shape is checked without any I/O: a ``str`` of 43 base64url characters
    whose last one carries 4 bits.
    """
    if type(token) is not str or len(token) != TOKEN_LENGTH or not token.isascii():
        return None
    raw = token.encode()
    if raw.translate(_CLASSES) != _WELL_FORMED or raw[-1] not in _LAST:
        return None
    return _sha256(raw).hexdigest()


def hash_key(token: object) -> str | None:
    """Return the store key of an ASCII ``str`` as long as a token, else ``None``.

    :func:`lookup_key` without the alphabet check, for a store in process
    memory, where looking the key up costs less than checking every
    character: a string that is not a token hashes to a key no record has.
    """
    if type(token) is not str or len(token) != TOKEN_LENGTH or not token.isascii():
        return None
    return _sha256(token.encode()).hexdigest()


def is_well_formed(token: object) -> TypeGuard[str]:
    """Tell whether ``token`` has the exact shape of a token, without any I/O."""
    return lookup_key(token) is not None


def token_key(token: str) -> str:
    """Return the store key of a well-formed token: its SHA-256, in hex."""
    return _sha256(token.encode("ascii")).hexdigest()
