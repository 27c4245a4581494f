"""Known answers for what asyncsess keeps at rest: the sealed blob, the key derivation and
its labels, the user reference, the token's store key, and a whole sealed record.

A change to any of them passes every round-trip test and logs every user out: these
fixed inputs and fixed bytes catch it (and sealing that ignores the associated data, a
key derived without the token, or a constant key).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asyncsess import Record, SessionManager
from asyncsess.sealing import Keyring, SealError
from asyncsess.session import thaw
from asyncsess.stores.file import FileStore
from asyncsess.tokens import is_well_formed, token_key

pytestmark = pytest.mark.anyio

TOKEN = "known-answer-token-xxxxxxxxxxxxxxxxxxxxxxxA"
OTHER_TOKEN = "known-answer-token-yyyyyyyyyyyyyyyyyyyyyyyA"
SECRET = b"known-answer-secret-0123456789abcdef"
NEWER_SECRET = b"known-answer-secret-newer-0123456789abcdef"
BODY = b'{"u":"alice","d":{"role":"admin","cart":[1,2,3]}}'
CREATED, ABSOLUTE = 1700000000.0, 1700086400.0

#: SHA-256(b"asyncsess key id\x00" + secret)[:4]
KEY_ID = bytes.fromhex("a252c400")
#: HKDF-Expand(HMAC(b"asyncsess seal v1", secret), b"asyncsess token v1\x00" + token, 32)
TOKEN_AES_KEY = bytes.fromhex("a0ac7b5ed57e825253e3182e650c5c8a1294619386795f07947d8af646e861ee")
#: HMAC(HKDF(secret, info=b"asyncsess user ref v1"), b"alice"), hex
USER_REF = "26e6e085a4e379ee4130f4c323ba76a0c1469bb1f79d069a101c1b165869a8da"
#: SHA-256(token), hex: the record's key
TOKEN_KEY = "5439ac396de24ff128a0b392a1ae1d8d47ee46a072966d82a561b657485daeda"
#: key | 0 | user ref | 0 | created, absolute (big-endian doubles) | version (big-endian int64)
AAD = bytes.fromhex(
    "3534333961633339366465323466663132386130623339326131616531643864343765653436613037"
    "323936366438326135363162363537343835646165646100323665366530383561346533373965653431"
    "333066346333323362613736613063313436396262316637396430363961313031633162313635383639"
    "613864610041d954fc4000000041d95550a00000000000000000000001"
)
#: format 2 | key id | nonce 00..0b | AES-256-GCM(TOKEN_AES_KEY, BODY, AAD)
BLOB = bytes.fromhex(
    "02a252c400000102030405060708090a0b89814c716c1b000e79b7d8159f4eca7ea6a3cba4d882a767f7"
    "a4c567dfecee75ac729d1f337b42f1208dc05f5d5576de2cf7137e85353085af02e174e48d5295b4"
)


def test_the_fixed_inputs_are_well_formed() -> None:
    assert is_well_formed(TOKEN) and is_well_formed(OTHER_TOKEN)
    assert token_key(TOKEN) == TOKEN_KEY


def test_a_fixed_blob_opens_to_its_fixed_body() -> None:
    keyring = Keyring([SECRET])
    assert keyring.open(TOKEN, BLOB, AAD) == BODY
    assert Keyring([NEWER_SECRET, SECRET]).open(TOKEN, BLOB, AAD) == BODY  # older secrets open


def test_what_seal_makes_opens_under_the_derived_key_and_the_aad_only() -> None:
    """Decrypted here with the known key, not with Keyring: sealing that ignores the
    associated data, derives the key without the token, or uses a constant key fails."""
    blob = Keyring([SECRET]).seal(TOKEN, BODY, AAD)
    assert blob[:1] == b"\x02" and blob[1:5] == KEY_ID and len(blob) == 1 + 4 + 12 + len(BODY) + 16
    assert AESGCM(TOKEN_AES_KEY).decrypt(blob[5:17], blob[17:], AAD) == BODY
    other = Keyring([SECRET]).seal(OTHER_TOKEN, BODY, AAD)
    with pytest.raises(InvalidTag):  # another token: another key
        AESGCM(TOKEN_AES_KEY).decrypt(other[5:17], other[17:], AAD)
    nonces = {Keyring([SECRET]).seal(TOKEN, BODY, AAD)[5:17] for _ in range(16)}
    assert len(nonces) == 16  # a fresh nonce each time


@pytest.mark.parametrize(
    ("token", "aad"),
    [(TOKEN, AAD[:-1] + b"\x02"), (TOKEN, b""), (OTHER_TOKEN, AAD)],
    ids=["another version", "no aad", "another token"],
)
def test_the_fixed_blob_refuses_other_associated_data_or_token(token: str, aad: bytes) -> None:
    with pytest.raises(SealError):
        Keyring([SECRET]).open(token, BLOB, aad)


def test_a_blob_under_an_unknown_secret_or_format_is_refused() -> None:
    with pytest.raises(SealError, match="no longer configured"):
        Keyring([NEWER_SECRET]).open(TOKEN, BLOB, AAD)
    with pytest.raises(SealError, match="format 2"):
        Keyring([SECRET]).open(TOKEN, b"\x01" + BLOB[1:], AAD)


def test_user_reference_vectors() -> None:
    assert Keyring([SECRET]).user_refs("alice") == [USER_REF]
    refs = Keyring([NEWER_SECRET, SECRET]).user_refs("alice")
    assert refs[1] == USER_REF and refs[0] != USER_REF and len(refs[0]) == 64


async def test_a_fixed_sealed_record_opens_through_the_public_api(tmp_path: Path) -> None:
    """The whole at-rest record: store key, user reference, the associated data's layout
    (key, user ref, creation, absolute expiry, version) and the body's JSON shape."""
    store = FileStore(tmp_path, fsync=False)
    mgr = SessionManager(
        store, secret=SECRET, clock=lambda: CREATED + 60, absolute_timeout=ABSOLUTE - CREATED
    )
    record = Record(TOKEN_KEY, USER_REF, BLOB, 1, CREATED, CREATED + 3600, ABSOLUTE)
    await store.open()
    await store.insert(record)
    session = await mgr.validate(TOKEN)
    assert session is not None and session.user_id == "alice" and session.version == 1
    assert thaw(session.data) == {"role": "admin", "cart": [1, 2, 3]}
    assert (session.created, session.absolute_expires) == (CREATED, ABSOLUTE)
    assert [info.id for info in await mgr.sessions("alice")] == [TOKEN_KEY]
    await mgr.aclose()
    await store.aclose()
