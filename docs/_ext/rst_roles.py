"""Griffe extension: show the package's Sphinx-style docstring markup as Markdown.

The docstrings use reStructuredText roles (``:class:`~asyncsess.StoreError```)
and literal blocks introduced by ``::``. This turns each role into a code span
(``~`` keeps the last dotted part, as Sphinx does) and ``::`` into ``:``; the
indented block after it is already a Markdown code block. The source is not
changed; only what the API reference shows.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`([^`]+)`")
_LITERAL = re.compile(r"(?m)(\S)::$|^::$")


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    if "<" in target and target.endswith(">"):  # :meth:`text <target>`
        return f"`{target.split('<', 1)[0].strip()}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def markdown(text: str) -> str:
    """Return ``text`` with reST roles as code spans and ``::`` as ``:``."""
    text = _ROLE.sub(_role, text)
    return _LITERAL.sub(lambda m: f"{m.group(1)}:" if m.group(1) else "", text)


class RstRoles(griffe.Extension):
    """Rewrite each docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Convert ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
