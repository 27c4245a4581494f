"""URL query options that a store reads itself, split from those its driver reads."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["split_query"]


def split_query(url: str, names: Collection[str]) -> tuple[str, dict[str, str]]:
    """Return ``url`` without the query options in ``names``, and those options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in names}
    rest = urlencode([(k, v) for k, v in query if k not in names])
    return urlunsplit(parts._replace(query=rest)), ours
