"""The example shops in a real browser: Debian's Chromium, headless, driven by Playwright.

Playwright (the pip package) only drives the browser here: it is launched
from ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` does
it), nothing is downloaded. Each page is screenshotted under
``tests/artifacts/`` so a failure can be seen.

Two browser contexts are two devices. The attacker is a second server on
another origin whose page submits a form to the shop by itself: once from
the same site (127.0.0.1, another port) and once cross-site (localhost).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.backends import unavailable
from tests.integrations.helpers import PASSWORD, load_example, serve_aiohttp, serve_asgi

try:
    from playwright.async_api import Browser, Page, async_playwright

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover - the test dependency group installs it
    HAVE_PLAYWRIGHT = False

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SECRET = "browser-secret-0123456789-abcdefghijklmnop"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, under Playwright's control."""
    if not HAVE_PLAYWRIGHT or not Path(CHROMIUM).exists():
        unavailable("Chromium and Playwright", "apt-get install chromium; pip install playwright")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


def serve_example(name: str) -> AbstractAsyncContextManager[str]:
    """One example app, in this process, on the memory store."""
    module = load_example(name)
    app = module.create_app(module.webshop.Settings("memory://", SECRET))
    return serve_asgi(app) if name == "fastapi_app" else serve_aiohttp(app)


def attacker(target: str) -> web.Application:
    """A page on another origin that posts forms to ``target`` as soon as it loads."""

    async def forged(request: web.Request) -> web.Response:
        action, fields = request.match_info["action"], {"sku": "fig"}
        if action == "login":
            fields = {"username": "mallory", "password": "mallory's own password"}
        inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
        html = (
            f'<!doctype html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{target}/{action.replace("-", "/")}">{inputs}</form>'
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{action}", forged)
    return app


class Shot:
    """Screenshots named by app and step, in order."""

    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0
        ARTIFACTS.mkdir(exist_ok=True)

    async def __call__(self, page: Page, step: str) -> None:
        self.count += 1
        path = ARTIFACTS / f"{self.name}-{self.count:02d}-{step}.png"
        await page.screenshot(path=str(path), full_page=True)


async def forged_post(page: Page, url: str, action: str) -> tuple[int, str]:
    """Open the attacker's page; return the status and text of the shop's answer."""
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.goto(f"{url}/{action}")
    response = await answer.value
    await page.wait_for_load_state()
    return response.status, await response.text()


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("name", ["fastapi_app", "aiohttp_app"])
async def test_the_shop_in_chromium(name: str) -> None:
    shot = Shot(name.removesuffix("_app"))
    async with serve_example(name) as url, chromium() as browser:
        laptop = await (await browser.new_context()).new_page()
        phone_context = await browser.new_context()
        phone = await phone_context.new_page()

        await laptop.goto(url + "/")
        await shot(laptop, "shop")
        assert await laptop.context.cookies() == []  # looking makes no session
        await laptop.click("#add-apple")
        await laptop.click("#add-apple")
        await laptop.click("#add-fig")
        await shot(laptop, "cart-before-login")
        assert await laptop.inner_text(".qty-apple") == "2"
        cookies = {c["name"]: c for c in await laptop.context.cookies()}
        session = cookies["__Host-session"]  # a Secure __Host- cookie, kept over http://127.0.0.1
        assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"

        await laptop.goto(url + "/register")
        await laptop.fill("input[name=username]", "alice")
        await laptop.fill("input[name=password]", "short")
        await laptop.click("#submit")
        await shot(laptop, "register-refused")
        assert "12" in await laptop.inner_text("#error")
        await laptop.fill("input[name=password]", PASSWORD)
        await laptop.click("#submit")
        await laptop.wait_for_url(url + "/login")
        await shot(laptop, "login")
        await laptop.fill("input[name=username]", "alice")
        await laptop.fill("input[name=password]", PASSWORD)
        await laptop.click("#submit")
        await laptop.wait_for_url(url + "/account")
        await shot(laptop, "account-cart-after-login")
        assert await laptop.inner_text("#username") == "alice"
        assert await laptop.inner_text(".qty-apple") == "2"
        assert await laptop.inner_text(".qty-fig") == "1"
        after = {c["name"]: c["value"] for c in await laptop.context.cookies()}
        assert after["__Host-session"] != session["value"]  # a new token at login
        assert "__Host-device" in after

        await phone.goto(url + "/login")
        await phone.fill("input[name=username]", "alice")
        await phone.fill("input[name=password]", PASSWORD)
        await phone.click("#submit")
        await phone.wait_for_url(url + "/account")
        await shot(phone, "phone-account")
        assert await phone.is_visible("#cart-empty")

        await laptop.goto(url + "/devices")
        assert await laptop.locator("#devices tr.other").count() == 1
        assert await laptop.locator("#devices tr.this").count() == 1
        await shot(laptop, "devices")
        await laptop.fill("#others-password", "not my password")
        await laptop.click("#logout-others")
        await shot(laptop, "devices-wrong-password")
        assert await laptop.locator("#devices tr.other").count() == 1
        await laptop.fill("#others-password", PASSWORD)
        await laptop.click("#logout-others")
        await shot(laptop, "devices-others-logged-out")
        assert await laptop.locator("#devices tr.other").count() == 0
        await phone.goto(url + "/account")
        await phone.wait_for_url(url + "/login")
        await shot(phone, "phone-logged-out")

        # Forms posted by other origins' pages are refused, cookie or not.
        other_port = serve_aiohttp(attacker(url))
        async with other_port as same_site:
            cross_site = same_site.replace("127.0.0.1", "localhost")
            for origin, where in ((same_site, "same-site"), (cross_site, "cross-site")):
                for action in ("cart-add", "login"):
                    evil = await laptop.context.new_page()
                    status, text = await forged_post(evil, origin, action)
                    assert status == 403, (origin, action, text)
                    assert "CSRF check failed" in text
                    await shot(evil, f"forged-{action}-{where}")
                    await evil.close()
        await laptop.goto(url + "/account")
        assert await laptop.inner_text(".qty-fig") == "1"  # the forged add did nothing

        await laptop.click("#logout")
        await laptop.wait_for_url(url + "/")
        await shot(laptop, "logged-out")
        assert "You are logged out" in await laptop.content()
        await laptop.goto(url + "/account")
        await laptop.wait_for_url(url + "/login")
        await phone_context.close()
