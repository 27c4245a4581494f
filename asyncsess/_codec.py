"""Session records' payloads: the body the manager writes, sealed at rest, and user references.

The body is JSON ``{"u": user_id or null, "d": data}``; a store in process
memory keeps the same JSON types in :mod:`marshal` form (nothing is at rest
there). At rest in privacy mode the body is sealed (:mod:`asyncsess.sealing`)
under the newest secret, bound by its associated data to the record's key,
user reference, creation time, absolute expiry and version: a record edited
in the store (moved to another key or user, given a longer life, an older or
newer version) no longer opens.

A user reference is how a store knows a record's user: the keyed hash of the
user id under the newest secret in privacy mode, the id itself otherwise, and
``""`` for a session without a user (stores index no such record).
"""

from __future__ import annotations

import json
import logging
import marshal
import struct
from collections.abc import Mapping
from typing import Any

from .sealing import Keyring, SealError
from .stores.base import Record
from .tokens import token_key

__all__ = ["Codec", "check_data"]

log = logging.getLogger("asyncsess")
_TIMES = struct.Struct(">ddq")  # created_at, absolute_at, version


def _plain(value: object) -> object:
    """``json.dumps`` hook: the read-only mappings of handed-out session data, as dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def check_data(data: object) -> dict[str, Any]:
    """Session data as a dict (``None``: empty); ``TypeError`` for anything but a mapping."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise TypeError(f"session data must be a mapping, not {type(data).__name__}")
    return dict(data)


def _aad(key: str, user_ref: str, created_at: float, absolute_at: float, version: int) -> bytes:
    head = f"{key}\x00{user_ref}\x00".encode()
    return head + _TIMES.pack(created_at, absolute_at, version)


class Codec:
    """Builds records' payloads and opens them, for one manager.

    ``keyring`` is ``None`` when nothing is sealed (process memory, or privacy
    mode off); the manager may set it once the store supplied a secret.
    ``max_data_bytes`` bounds the JSON of a session's data (``None``: no bound).
    """

    __slots__ = ("in_process", "keyring", "max_data_bytes")

    def __init__(
        self, keyring: Keyring | None, *, in_process: bool, max_data_bytes: int | None
    ) -> None:
        self.keyring = keyring
        self.in_process = in_process
        self.max_data_bytes = max_data_bytes

    def user_refs(self, user_id: str) -> list[str]:
        """Every reference ``user_id`` may be stored under, the one written first."""
        return self.keyring.user_refs(user_id) if self.keyring is not None else [user_id]

    def user_ref(self, user_id: str | None) -> str:
        """The reference a record of ``user_id`` is written with (``""``: no user)."""
        if user_id is None:
            return ""
        return self.user_refs(user_id)[0]

    def record(
        self,
        token: str,
        user_id: str | None,
        data: Any,
        version: int,
        created_at: float,
        expires_at: float,
        absolute_at: float,
        *,
        key: str | None = None,
    ) -> Record:
        """The record of ``token``'s session, sealed under the newest secret.

        ``key`` is the token's store key when the caller has it already (else
        it is computed: one hash per token). ``data`` may hold read-only
        mappings and tuples (a session's frozen data, see
        :mod:`asyncsess.session`). Raises ``TypeError`` for data that JSON
        cannot hold and ``ValueError`` for data over ``max_data_bytes``.
        """
        encoded = json.dumps(data, separators=(",", ":"), default=_plain)
        if self.max_data_bytes is not None and len(encoded) > self.max_data_bytes:
            raise ValueError(
                f"session data is {len(encoded)} bytes as JSON, over the limit of "
                f"max_data_bytes={self.max_data_bytes}: keep large values elsewhere "
                "and store a reference in the session"
            )
        key = token_key(token) if key is None else key
        user_ref = self.user_ref(user_id)
        if self.in_process:  # the JSON types, in a faster format for this process
            payload = marshal.dumps({"u": user_id, "d": json.loads(encoded)})
        else:
            payload = f'{{"u":{json.dumps(user_id)},"d":{encoded}}}'.encode()
            if self.keyring is not None:
                aad = _aad(key, user_ref, created_at, absolute_at, version)
                payload = self.keyring.seal(token, payload, aad)
        return Record(key, user_ref, payload, version, created_at, expires_at, absolute_at)

    def reseal(self, token: str, record: Record, user_id: str | None, data: Any) -> Record:
        """``record`` sealed and referenced under the newest secret (same version and times)."""
        return self.record(
            token,
            user_id,
            data,
            record.version,
            record.created_at,
            record.expires_at,
            record.absolute_at,
            key=record.key,
        )

    def open(self, token: str, record: Record) -> tuple[str | None, dict[str, Any]] | None:
        """Return the user id and data of ``record``, or ``None`` if it does not open."""
        try:
            plain = record.payload
            if self.keyring is not None:
                aad = _aad(
                    record.key,
                    record.user_ref,
                    record.created_at,
                    record.absolute_at,
                    record.version,
                )
                plain = self.keyring.open(token, plain, aad)
            body = marshal.loads(plain) if self.in_process else json.loads(plain)  # noqa: S302
            user_id, data = body["u"], body["d"]
            if not isinstance(data, dict) or not (user_id is None or isinstance(user_id, str)):
                raise TypeError("not a session body")
            if self.keyring is None and record.user_ref != (user_id or ""):
                raise ValueError("the record's user reference is not its user's")
            return user_id, data
        except (SealError, ValueError, KeyError, TypeError, EOFError) as exc:
            log.warning("session record %s… does not open: %s", record.key[:8], exc)
            return None

    def is_current(self, record: Record, user_id: str | None) -> bool:
        """Whether an opened ``record`` is sealed and referenced under the newest secret."""
        keyring = self.keyring
        if keyring is None or not keyring.rotating:
            return True  # a record that opens under the only secret is sealed with it
        return keyring.sealed_with_newest(record.payload) and record.user_ref == self.user_ref(
            user_id
        )
