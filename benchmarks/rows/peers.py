"""What several row modules share about the peer libraries (no rows here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp.test_utils import make_mocked_request
from aiohttp.web import Request
from starlette.requests import HTTPConnection
from starsessions.serializers import Serializer
from starsessions.session import SessionHandler
from starsessions.stores.base import SessionStore

from ..harness import Op

LIFETIME = 3600  # seconds: asyncsess's default idle timeout, given to every peer


def starsessions_load(store: SessionStore, serializer: Serializer) -> Op:
    """What starsessions' middleware does per request to load a session, given its id.

    ``SessionHandler.load`` (read, deserialize, merge its metadata) on a bare
    ``HTTPConnection``: the cookie is parsed already, as asyncsess is given the
    token. Returns the session (``{}``, falsy, for an unknown id).
    """

    async def load(session_id: str) -> object:
        connection = HTTPConnection({"type": "http"})
        handler = SessionHandler(connection, session_id, store, serializer, LIFETIME)
        await handler.load()
        return connection.session

    return load


def aiohttp_requests(cookie_name: str, values: Iterable[str]) -> dict[str, Request]:
    """One request per cookie value, carrying it, built before timing.

    Each is cloned from one ``make_mocked_request`` (making each with it takes
    milliseconds); its cookie header is parsed on first use, as aiohttp does
    once per request.
    """
    base = make_mocked_request("GET", "/")
    return {value: base.clone(headers={"Cookie": f"{cookie_name}={value}"}) for value in values}


@dataclass
class User:
    """A fastapi-users user (its ``UserProtocol``), for user databases kept in a dict."""

    id: uuid.UUID
    email: str
    hashed_password: str
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = False
