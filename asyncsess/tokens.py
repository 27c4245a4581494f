"""Session tokens: generation, a shape check that needs no I/O, and the stored hash.

A token is 32 bytes (256 bits) from :mod:`secrets`, base64url-encoded without
padding: always 43 characters. Stores only ever see :func:`token_key`, the
SHA-256 of the token, so a copy of a store cannot be replayed as tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import string

__all__ = ["TOKEN_BYTES", "TOKEN_LENGTH", "is_well_formed", "new_token", "token_key"]

TOKEN_BYTES = 32
TOKEN_LENGTH = 43

_ALPHABET = string.ascii_letters + string.digits + "-_"
# 32 bytes take 42 full base64 characters plus one holding the last 4 bits, so
# the final character is always one of the 16 whose low two bits are zero.
_LAST = frozenset("AEIMQUYcgkosw048")


def new_token() -> str:
    """Return a fresh URL-safe token carrying 256 random bits."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_well_formed(token: object) -> bool:
    """Tell whether ``token`` has the exact shape of a token, without any I/O.

    Anything else (another type, another length, another alphabet) is ``False``.
    """
    return (
        type(token) is str
        and len(token) == TOKEN_LENGTH
        and token[-1] in _LAST
        and not token.strip(_ALPHABET)
    )


def token_key(token: str) -> str:
    """Return the store key of a well-formed token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()
