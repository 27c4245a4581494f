"""The :class:`User` value object and the rules for usernames and passwords.

Usernames are compared in their normalised form: Unicode NFKC, then full case
folding, then NFKC again (the ``toNFKC_Casefold`` recipe), so ``"Alice"``,
``"ALICE"`` and ``"Alice"`` in full-width letters are one user. The normalised
form must be 1 to :data:`MAX_USERNAME` characters, without surrounding
whitespace, control, format, private-use, surrogate or unassigned code points,
or line/paragraph separators. Inner spaces are allowed.

Passwords are ``str`` of 1 to :data:`MAX_PASSWORD` characters (checked before
anything else, so a 10 MB password costs nothing), encodable as UTF-8. They
are hashed after NFKC normalisation (NIST SP 800-63B §5.1.1.2), so the same
password typed as composed or decomposed characters on two devices matches.
A *new* password (:meth:`Accounts.create_user
<asyncsess.accounts.Accounts.create_user>`, :meth:`~asyncsess.accounts.Accounts.change_password`)
must also have at least ``min_length`` characters after normalisation
(default :data:`MIN_PASSWORD`, 12: OWASP ASVS 4.0.3 V2.1.1) and must not be
the username (compared as usernames are); existing shorter passwords still
log in (ASVS V2.1.9: no other composition rules).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ..exceptions import InvalidPassword, InvalidUsername

__all__ = [
    "MAX_PASSWORD",
    "MAX_USERNAME",
    "MIN_PASSWORD",
    "User",
    "UserRecord",
    "check_new_password",
    "normalize_password",
    "normalize_username",
]

#: Longest username, in characters of its normalised form.
MAX_USERNAME: Final = 150
#: Longest password, in characters (argon2 accepts more; nobody types more).
MAX_PASSWORD: Final = 1024
#: Shortest new password by default, in characters (ASVS 2.1.1).
MIN_PASSWORD: Final = 12
# NFKC can shrink a string (composition), so allow some slack before normalising.
_MAX_RAW_USERNAME: Final = 4 * MAX_USERNAME
# Cc control, Cf format (zero-width, bidi), Cs surrogate, Co private use, Cn unassigned,
# Zl/Zp line and paragraph separators.
_REFUSED: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class User:
    """A user account: no password material, safe to log and to pass around.

    ``id`` is random and never changes: use it as the session's user id.
    ``username`` is the normalised form, ``created_at`` is timezone-aware UTC.
    """

    id: str
    username: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserRecord:
    """What a user backend stores: the user plus the argon2 hash (internal)."""

    id: str
    username: str
    password_hash: str
    created_at: float  # seconds since the epoch


def normalize_username(username: object) -> str:
    """Return the normalised form of ``username``, or raise :class:`InvalidUsername`."""
    if not isinstance(username, str):
        raise InvalidUsername(f"a username must be a str, not {type(username).__name__}")
    if not username:
        raise InvalidUsername("a username must not be empty")
    if len(username) > _MAX_RAW_USERNAME:
        raise InvalidUsername(f"a username must be at most {MAX_USERNAME} characters")
    name = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())
    if not name:
        raise InvalidUsername("a username must not be empty")
    if len(name) > MAX_USERNAME:
        raise InvalidUsername(f"a username must be at most {MAX_USERNAME} characters")
    if name != name.strip():
        raise InvalidUsername("a username must not start or end with whitespace")
    for char in name:
        if unicodedata.category(char) in _REFUSED:
            raise InvalidUsername(
                f"a username must not contain control or invisible characters (U+{ord(char):04X})"
            )
    return name


def normalize_password(password: object) -> str:
    """Return ``password`` ready to hash (NFKC), or raise :class:`InvalidPassword`."""
    if not isinstance(password, str):
        raise InvalidPassword(f"a password must be a str, not {type(password).__name__}")
    if not password:
        raise InvalidPassword("a password must not be empty")
    if len(password) > MAX_PASSWORD:
        raise InvalidPassword(f"a password must be at most {MAX_PASSWORD} characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPassword("a password must be valid Unicode (no lone surrogates)") from None
    return unicodedata.normalize("NFKC", password)


def check_new_password(plain: str, name: str, min_length: int) -> None:
    """Refuse a (normalised) new password shorter than ``min_length`` or equal to ``name``."""
    if len(plain) < min_length:
        raise InvalidPassword(f"a password must be at least {min_length} characters long")
    try:
        same = normalize_username(plain) == name
    except InvalidUsername:
        same = False
    if same:
        raise InvalidPassword("a password must not be the username")
