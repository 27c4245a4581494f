"""Fixtures: each behaviour test runs on uvicorn (FastAPI) and on aiohttp's server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from asyncsess import SessionManager

from .apps import Gates, aiohttp_app, fastapi_app
from .helpers import serve_aiohttp, serve_asgi

Serve = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture(params=["fastapi", "aiohttp"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def serve(framework: str, gates: Gates) -> Serve:
    """``async with serve(manager, **middleware_options) as base_url``: the test app, served."""

    @asynccontextmanager
    async def run(manager: SessionManager, **options: Any) -> AsyncIterator[str]:
        if framework == "fastapi":
            async with serve_asgi(fastapi_app(manager, gates, **options)) as url:
                yield url
        else:
            async with serve_aiohttp(aiohttp_app(manager, gates, **options)) as url:
                yield url

    return run
