"""CSRF through real servers: Origin and Sec-Fetch-Site, the synchronizer token, bearer, login."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from asyncsess import ConfigurationError, SessionManager
from asyncsess.integrations.starlette import CsrfSettings, SessionConfig
from asyncsess.session import thaw

from .conftest import Serve
from .helpers import PASSWORD, browser, fast_accounts, manager_with_accounts

VALUE = {"key": "k", "value": {"nested": [1, 2]}}


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    accounts = fast_accounts()
    await accounts.create_user("alice", PASSWORD)
    async with accounts, manager_with_accounts(accounts) as mgr:
        yield mgr


async def _with_session(url: str) -> dict[str, str]:
    async with browser(url) as (client, jar):
        await client.post("/set", json=VALUE)
        return {"cookie": f"__Host-session={jar.cookies['__Host-session']}"}


@pytest.mark.anyio
async def test_cross_site_post_with_the_cookie_is_refused(
    serve: Serve, manager: SessionManager
) -> None:
    async with serve(manager) as url, httpx.AsyncClient(base_url=url) as raw:
        cookie = await _with_session(url)
        evil = "http://evil.example"
        for headers in (
            {"sec-fetch-site": "cross-site", "origin": evil},
            {"sec-fetch-site": "cross-site"},
            {"origin": evil},
            {"origin": "null"},
            {"sec-fetch-site": "same-site", "origin": "http://sub.127.0.0.1"},
        ):
            response = await raw.post("/set", json=VALUE, headers=cookie | headers)
            assert response.status_code == 403, headers
            assert "CSRF" in response.text
        same = await raw.post(
            "/set", json=VALUE, headers=cookie | {"origin": url, "sec-fetch-site": "same-origin"}
        )
        assert same.status_code == 200
        typed = await raw.post("/set", json=VALUE, headers=cookie | {"sec-fetch-site": "none"})
        assert typed.status_code == 200
        assert (await raw.get("/read", headers=cookie | {"origin": evil})).status_code == 200


@pytest.mark.anyio
async def test_without_origin_headers_the_synchronizer_token_is_required(
    serve: Serve, manager: SessionManager
) -> None:
    async with serve(manager) as url, httpx.AsyncClient(base_url=url) as raw:
        cookie = await _with_session(url)
        assert (await raw.post("/set", json=VALUE, headers=cookie)).status_code == 403
        token = (await raw.get("/csrf", headers=cookie)).json()["token"]
        assert len(token) >= 40
        wrong = cookie | {"x-csrf-token": token[:-2] + "xx"}
        assert (await raw.post("/set", json=VALUE, headers=wrong)).status_code == 403
        good = cookie | {"x-csrf-token": token}
        assert (await raw.post("/set", json=VALUE, headers=good)).status_code == 200
        form = await raw.post("/form", data={"csrf_token": token, "value": "v"}, headers=cookie)
        assert form.status_code == 200  # the handler still reads the whole form
        assert (await raw.get("/read", headers=cookie)).json()["data"]["form"] == "v"
        files = {"value": (None, "m"), "csrf_token": (None, token)}
        multipart = await raw.post("/form", files=files, headers=cookie)
        assert multipart.status_code == 200
        assert (await raw.post("/form", data={"value": "v"}, headers=cookie)).status_code == 403
        # No cookie, no headers: not a browser riding on a session: nothing to forge.
        assert (await raw.post("/set", json=VALUE)).status_code == 200


@pytest.mark.anyio
async def test_bearer_requests_are_exempt(serve: Serve, manager: SessionManager) -> None:
    token = await manager.create("api-user", {"scopes": ["read"]})
    bearer = {"authorization": f"Bearer {token}", "sec-fetch-site": "cross-site"}
    async with serve(manager) as url, httpx.AsyncClient(base_url=url) as raw:
        response = await raw.post("/set", json=VALUE, headers=bearer | {"origin": "http://x.y"})
        assert response.status_code == 200
        assert "set-cookie" not in response.headers  # bearer clients get no cookies
    session = await manager.validate(token)
    assert session is not None and thaw(session.data["k"]) == {"nested": [1, 2]}


@pytest.mark.anyio
async def test_login_csrf_is_refused(serve: Serve, manager: SessionManager) -> None:
    """A cross-site login form must not log the victim's browser into the attacker's account."""
    creds = {"username": "alice", "password": PASSWORD}
    async with serve(manager) as url, httpx.AsyncClient(base_url=url) as raw:
        forged = await raw.post(
            "/login",
            json=creds,
            headers={"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
        )
        assert forged.status_code == 403
        assert "set-cookie" not in forged.headers
        assert await manager.count() == (0, 0)
        same = await raw.post("/login", json=creds, headers={"origin": url})
        assert same.status_code == 200


@pytest.mark.anyio
async def test_trusted_origins_and_forwarded_proto(serve: Serve, manager: SessionManager) -> None:
    front = "https://front.example"
    config = SessionConfig(csrf=CsrfSettings(trusted_origins=frozenset({front})))
    async with serve(manager, config=config) as url, httpx.AsyncClient(base_url=url) as raw:
        cookie = await _with_session(url)
        trusted = cookie | {"origin": front, "sec-fetch-site": "cross-site"}
        assert (await raw.post("/set", json=VALUE, headers=trusted)).status_code == 200
    # Behind a TLS proxy the browser's Origin is https://host; the proxy's X-Forwarded-Proto,
    # appended last, tells the app so. An earlier value is the client's own and is ignored.
    from asyncsess.integrations.starlette import CookieSettings

    proxied = SessionConfig(cookie=CookieSettings(trust_forwarded=True))
    async with serve(manager, config=proxied) as url, httpx.AsyncClient(base_url=url) as raw:
        cookie = await _with_session(url)
        https_origin = {"origin": url.replace("http://", "https://")}
        ok = cookie | https_origin | {"x-forwarded-proto": "http, https"}
        assert (await raw.post("/set", json=VALUE, headers=ok)).status_code == 200
        spoofed = cookie | https_origin | {"x-forwarded-proto": "https, http"}
        assert (await raw.post("/set", json=VALUE, headers=spoofed)).status_code == 403


def test_csrf_settings_check_origins() -> None:
    with pytest.raises(ConfigurationError, match="scheme://host"):
        CsrfSettings(trusted_origins=frozenset({"https://x.example/path"}))
    with pytest.raises(ConfigurationError, match="scheme://host"):
        CsrfSettings(trusted_origins=frozenset({"x.example"}))
    assert CsrfSettings(trusted_origins=frozenset({"https://X.example"})).trusted_origins == {
        "https://x.example"
    }
