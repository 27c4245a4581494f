"""asyncsess in one screen: ``nox -s demo`` or ``python examples/demo.py [STORE_URL]``.

Without a URL it runs on the embedded default store, SQLite (a temporary file).
"""

from __future__ import annotations

import secrets
import sys
import tempfile

import anyio

import asyncsess


async def main(url: str) -> None:
    secret = secrets.token_urlsafe(32)
    async with asyncsess.SessionManager(url, secret=secret, idle_timeout=1800) as mgr:
        token = await mgr.create("user-123", data={"role": "admin"})
        print(f"store:     {url}")
        print(f"token:     {token[:6]}… ({len(token)} chars, stored only as a hash)")
        session = await mgr.validate(token)
        assert session is not None
        print(f"validate:  user={session.user_id} data={dict(session.data)} v{session.version}")
        assert await mgr.update(token, {"role": "admin", "theme": "dark"}, version=1)
        new = await mgr.rotate(token)
        print(
            f"rotate:    old token -> {await mgr.validate(token)}, new token valid: "
            f"{await mgr.validate(new) is not None}"
        )
        await mgr.create("user-123")
        print(f"sessions:  {len(await mgr.sessions('user-123'))} live for user-123")
        print(f"malformed: {await mgr.validate('not-a-token')}")
        print(f"revoke_all -> {await mgr.revoke_all('user-123')}")
        print(f"wipe -> {await mgr.wipe()}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, sys.argv[1])
    else:  # the embedded default: SQLite, in a directory that goes away afterwards
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, f"sqlite+aiosqlite:///{tmp}/sessions.db")
