"""Griffe extension: show the package's Sphinx-style docstring markup as Markdown.

The docstrings use reStructuredText roles (``:class:`~asyncsess.StoreError```)
and literal blocks introduced by ``::``. Each role becomes a code span linked
to the object's entry in the API reference when it has one (an *optional*
cross-reference: a name with no entry, such as a third-party class, stays
plain code and warns of nothing); ``~`` shows the last dotted part only, as
Sphinx does. ``::`` becomes ``:``; the indented block after it is already a
Markdown code block. An attribute documented by ``#:`` comments above it
(which griffe does not read) gets them as its docstring. The source is not
changed, only what the site shows.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`([^`]+)`")
_LITERAL = re.compile(r"(?m)(\S)::$|^::$")


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as seen from ``obj`` (as written when it does not resolve)."""
    head, dot, rest = name.partition(".")
    try:
        return obj.resolve(head) + dot + rest
    except (griffe.NameResolutionError, KeyError, ValueError):
        return name


def markdown(text: str, obj: griffe.Object) -> str:
    """Return ``text`` with reST roles as (linked) code spans and ``::`` as ``:``."""

    def role(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        title = target
        if "<" in target and target.endswith(">"):  # :meth:`text <target>`
            title, target = (part.strip() for part in target[:-1].split("<", 1))
        if target.startswith("~"):
            target = target[1:]
            title = target.rsplit(".", 1)[-1]
        path = html.escape(_target(obj, target), quote=True)
        return f'<autoref identifier="{path}" optional><code>{html.escape(title)}</code></autoref>'

    text = _ROLE.sub(role, text)
    return _LITERAL.sub(lambda m: f"{m.group(1)}:" if m.group(1) else "", text)


def _comment_docstring(obj: griffe.Object) -> None:
    """Give an attribute documented by ``#:`` comments above it (Sphinx style) that text."""
    if obj.docstring is not None or not obj.is_attribute or obj.lineno is None:
        return
    if not isinstance(obj.filepath, Path) or obj.filepath not in obj.lines_collection:
        return
    lines = obj.lines_collection[obj.filepath]
    comments: list[str] = []
    index = obj.lineno - 2  # the line above the attribute (lineno is 1-based)
    while index >= 0 and lines[index].strip().startswith("#:"):
        comments.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    if comments:
        obj.docstring = griffe.Docstring(" ".join(comments), parent=obj)


def _walk(obj: griffe.Object) -> None:
    _comment_docstring(obj)
    if obj.docstring is not None:
        obj.docstring.value = markdown(obj.docstring.value, obj)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member)  # type: ignore[arg-type]


class RstRoles(griffe.Extension):
    """Rewrite every docstring of a package once it is loaded (so names resolve)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` and everything in it."""
        _walk(pkg)
