"""Tokens carry 256 random bits in every byte position; the cookie settings keep ``Secure``
(through the public CookieSettings API: what the web integrations render)."""

from __future__ import annotations

import base64
import logging

import pytest

from asyncsess.integrations import CookieSettings
from asyncsess.tokens import TOKEN_BYTES, TOKEN_LENGTH, is_well_formed, new_token


def test_every_byte_of_a_token_is_random() -> None:
    """A token with 128 random bits padded to the 256-bit shape would keep some byte
    positions fixed: across 64 tokens, each of the 32 positions takes many values."""
    raw = [base64.urlsafe_b64decode(new_token() + "=") for _ in range(64)]
    assert all(len(r) == TOKEN_BYTES for r in raw)
    for position in range(TOKEN_BYTES):
        assert len({r[position] for r in raw}) > 16, f"byte {position} barely varies"
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000 and all(len(t) == TOKEN_LENGTH and is_well_formed(t) for t in tokens)


def test_default_cookie_is_secure_httponly_lax_host_prefixed() -> None:
    settings = CookieSettings()
    header = settings.header("v", 60)
    assert header.startswith("__Host-session=v; ")
    attributes = header.split("; ")[1:]
    assert {"Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=60"} == set(attributes)
    assert "Secure" in settings.header("", 0).split("; ")  # the deleting header too
    assert "Secure" in settings.header("v", None, name=settings.device_cookie_name).split("; ")


def test_a_domain_cookie_is_secure_prefixed_and_still_secure() -> None:
    settings = CookieSettings(domain="example.com", lifetime="browser")
    header = settings.header("v", None)
    assert header.startswith("__Secure-session=v; Domain=example.com; ")
    assert "Secure" in header.split("; ") and "Max-Age" not in header


@pytest.mark.parametrize(
    ("trust", "scheme", "forwarded", "https"),
    [
        (False, "https", None, True),
        (False, "HTTPS", None, True),
        (False, "wss", None, True),
        (False, "http", "https", False),  # an untrusted header is ignored
        (True, "http", "http, https", True),  # the proxy's (rightmost) value decides
        (True, "http", "https, http", False),
        (True, "https", None, True),
    ],
)
def test_https_is_told_from_the_scheme_or_a_trusted_proxy(
    trust: bool, scheme: str, forwarded: str | None, https: bool
) -> None:
    assert CookieSettings(trust_forwarded=trust).is_https(scheme, forwarded) is https


def test_only_an_explicit_secure_false_drops_secure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asyncsess"):
        plain = CookieSettings(secure=False)
    assert "Secure" not in plain.header("v", 60).split("; ")
    assert plain.cookie_name == "session" and "development only" in caplog.text
