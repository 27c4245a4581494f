"""The README's FastAPI and aiohttp pages run as written, through real servers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .helpers import PASSWORD, browser, serve_aiohttp, serve_asgi

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README[README.index("## Web apps\n") : README.index("## Command line\n")]
FASTAPI, AIOHTTP = re.findall(r"```python\n(.*?)```", SECTION, re.S)[:2]


@pytest.mark.anyio
@pytest.mark.parametrize("framework", ["fastapi", "aiohttp"])
async def test_readme_web_app(framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCSESS_URL", "memory://")
    monkeypatch.setenv("ASYNCSESS_SECRET", "readme-secret-0123456789-abcdefghijklmnop")
    namespace: dict[str, Any] = {}
    exec(FASTAPI if framework == "fastapi" else AIOHTTP, namespace)
    await namespace["accounts"].create_user("alice", PASSWORD)
    server = serve_asgi if framework == "fastapi" else serve_aiohttp
    async with server(namespace["app"]) as url, browser(url) as (client, jar):
        assert (await client.get("/me")).status_code == 401
        assert (await client.post("/cart/apple")).json() == {"cart": ["apple"]}
        anonymous = jar.cookies["__Host-session"]
        form = {"username": "alice", "password": PASSWORD}
        assert (await client.post("/login", data=form)).json() == {"ok": True}
        assert jar.cookies["__Host-session"] != anonymous
        assert (await client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}
        assert (await client.get("/me")).json() == {"username": "alice"}
        forged = await client.post("/cart/fig", headers={"origin": "https://evil.example"})
        assert forged.status_code == 403
