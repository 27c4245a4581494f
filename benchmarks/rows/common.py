"""Helpers shared by the row modules."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncsess import SessionManager, Store

from ..harness import Prepared

SECRET = secrets.token_urlsafe(32)


@asynccontextmanager
async def asyncsess_row(store: Store | str, n: int, **options: object) -> AsyncIterator[Prepared]:
    """asyncsess ``validate`` over ``n`` live sessions (sealed wherever data is at rest)."""
    mgr = SessionManager(store, secret=SECRET, **options)  # type: ignore[arg-type]
    try:
        tokens = [await mgr.create(f"user-{i}", {"role": "member", "i": i}) for i in range(n)]
        yield Prepared(mgr.validate, tokens)
        await mgr.wipe()
    finally:
        await mgr.aclose()
