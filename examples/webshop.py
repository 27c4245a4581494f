"""What the two example web apps share: settings, the catalogue, the pages (Jinja2 templates).

``examples/fastapi_app.py`` and ``examples/aiohttp_app.py`` import this
module; each is one command to run. Settings come from the environment:

- ``ASYNCSESS_URL``: where sessions and users live (default: the SQLite file
  ``asyncsess-example.db``; every worker must share it: SQLite on one
  machine, or Redis/PostgreSQL/MariaDB/MongoDB);
- ``ASYNCSESS_SECRET``: the secret sealing sessions. Every worker must have
  the same one, so with several workers the apps refuse to start without it;
  with one, a fresh secret is made (restarting logs everyone out).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import secrets
import signal
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

from asyncsess import SessionInfo
from asyncsess.integrations import RequestSession

log = logging.getLogger("asyncsess.example")

DEFAULT_URL = "sqlite+aiosqlite:///asyncsess-example.db"
TEMPLATES = Path(__file__).resolve().parent / "templates"
#: sku -> (name, price in cents)
PRODUCTS: Mapping[str, tuple[str, int]] = {
    "apple": ("Apple", 50),
    "pear": ("Pear", 70),
    "fig": ("Fig", 120),
}


REFUSAL = (
    "asyncsess example: several workers need one shared ASYNCSESS_SECRET, or each would "
    "seal sessions with its own and most requests would fail. Set it first:\n"
    '  export ASYNCSESS_SECRET="$(python -c '
    "'import secrets; print(secrets.token_urlsafe(32))')\""
)


@dataclass(frozen=True)
class Settings:
    """Where the example keeps its data, and the secret every worker shares."""

    url: str
    secret: str


def several_workers(workers: int) -> bool:
    """Whether this process is (or will start) one of several server workers."""
    concurrency = os.environ.get("WEB_CONCURRENCY", "1")
    spawned = multiprocessing.parent_process() is not None  # uvicorn --workers, --reload
    return workers > 1 or spawned or (concurrency.isdigit() and int(concurrency) > 1)


def load_settings(workers: int = 1) -> Settings:
    """Read the settings; ``SystemExit`` with a message for several workers without a secret."""
    url = os.environ.get("ASYNCSESS_URL") or DEFAULT_URL
    secret = os.environ.get("ASYNCSESS_SECRET", "")
    if not secret:
        if several_workers(workers):
            parent = multiprocessing.parent_process()
            if parent is not None and parent.pid is not None:
                os.kill(parent.pid, signal.SIGTERM)  # the supervisor would restart us forever
            raise SystemExit(REFUSAL)
        log.warning("no ASYNCSESS_SECRET: a fresh one for this run (restarting logs everyone out)")
        secret = secrets.token_urlsafe(32)
    return Settings(url, secret)


def command_line(default_port: int) -> argparse.Namespace:
    """``--host``, ``--port`` and ``--workers``, as both examples take them."""
    parser = argparse.ArgumentParser(description="an asyncsess example shop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--workers", type=int, default=1)
    return parser.parse_args()


def templates() -> Environment:
    """The pages, read once now (no file reads while serving requests)."""
    pages = {path.name: path.read_text(encoding="utf-8") for path in TEMPLATES.glob("*.html")}
    env = Environment(loader=DictLoader(pages), autoescape=select_autoescape(default=True))
    env.filters["price"] = lambda cents: f"€{cents / 100:.2f}"
    env.filters["when"] = lambda ts: datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return env


def page_context(
    session: RequestSession,
    flashes: list[dict[str, str]],
    csrf_token: str,
    title: str,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """What every page shows: the user, flash messages, the CSRF token for forms, the cart."""
    return {
        "title": title,
        "username": session.get("username") if session.user_id else None,
        "flashes": flashes,
        "csrf_token": csrf_token,
        "cart": cart_lines(session),
        "products": PRODUCTS,
        **extra,
    }


def add_to_cart(session: MutableMapping[str, Any], sku: str) -> bool:
    """Put one ``sku`` in the session's cart (``{"lines": {sku: qty}}``); ``False`` if unknown."""
    if sku not in PRODUCTS:
        return False
    cart = session.setdefault("cart", {"lines": {}})
    cart["lines"][sku] = cart["lines"].get(sku, 0) + 1
    return True


def cart_lines(session: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cart as rows for the page: sku, name, quantity, line total."""
    lines = session.get("cart", {}).get("lines", {})
    return [
        {"sku": sku, "name": PRODUCTS[sku][0], "qty": qty, "total": qty * PRODUCTS[sku][1]}
        for sku, qty in lines.items()
        if sku in PRODUCTS
    ]


def device_rows(sessions: list[SessionInfo], current: str | None) -> list[dict[str, Any]]:
    """The devices page's rows: each session's id, times, and whether it is this one."""
    return [
        {"id": s.id, "created": s.created, "expires": s.expires, "this": s.id == current}
        for s in sessions
    ]
