"""Each call hashes a token once: the shape check and the store key are one SHA-256
(``revoke``, ``validate``, ``update``), and ``rotate`` adds only the new token's.

Counted with the interpreter's profiler, which sees every call of the SHA-256 builtin.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import pytest

from asyncsess import SessionManager

pytestmark = pytest.mark.anyio
SHA256 = hashlib.sha256
DATA = {"role": "admin", "cart": [1, 2, 3]}


async def hashes(call: Callable[[], Awaitable[object]]) -> int:
    """How many times ``call`` runs SHA-256 (not counting HMACs, which are not this builtin)."""
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event == "c_call" and arg is SHA256:
            count += 1

    sys.setprofile(profile)
    try:
        await call()
    finally:
        sys.setprofile(None)
    return count


async def test_one_hash_per_token_per_call() -> None:
    async with SessionManager("memory://") as mgr:
        token = await mgr.create("alice", DATA)
        assert await hashes(lambda: mgr.validate(token)) == 1
        assert await hashes(lambda: mgr.update(token, {**DATA, "role": "member"})) == 1
        assert await hashes(lambda: mgr.rotate(token)) == 2  # the old token's and the new one's
        assert await hashes(lambda: mgr.rotate(token)) == 1  # now dead: only its own
        new = await mgr.create("alice", DATA)
        assert await hashes(lambda: mgr.revoke(new)) == 1
        assert await hashes(lambda: mgr.revoke("not a token")) == 0
        assert await hashes(lambda: mgr.revoke_all("alice", keep=token)) == 1
