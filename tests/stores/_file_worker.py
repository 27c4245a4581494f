"""Run by test_file.py in separate OS processes sharing one file-store directory."""

from __future__ import annotations

import json
import sys

import anyio

from asyncsess import SessionConflict, SessionManager


async def main(url: str, name: str, shared_token: str, count: int) -> None:
    mgr = SessionManager(url)  # no secret: both processes share the store's key file
    created: list[str] = []
    revoked: list[str] = []
    updates = 0

    async def bump() -> None:
        nonlocal updates
        while True:
            session = await mgr.validate(shared_token)
            assert session is not None
            try:
                if await mgr.update(shared_token, {"last": name}, version=session.version):
                    updates += 1
                    return
            except SessionConflict:
                continue

    for i in range(count):
        token = await mgr.create(f"{name}-user", {"i": i})
        created.append(token)
        if i % 2:
            assert await mgr.revoke(created[i - 1])
            revoked.append(created[i - 1])
        if i % 4 == 0:
            await bump()
    await mgr.aclose()
    print(json.dumps({"created": created, "revoked": revoked, "updates": updates}))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
