"""HTTP integrations: :mod:`asyncsess.integrations.starlette` (Starlette),
:mod:`asyncsess.integrations.fastapi` (its FastAPI dependencies) and
:mod:`asyncsess.integrations.aiohttp`. Each imports its framework, so import the one you use.

The settings and the session mapping they share need no framework and are re-exported here.
"""

from ._common import CookieSettings as CookieSettings
from ._context import SessionConfig as SessionConfig
from ._csrf import CsrfSettings as CsrfSettings
from ._request_session import RequestSession as RequestSession

__all__ = ["CookieSettings", "CsrfSettings", "RequestSession", "SessionConfig"]
