"""MkDocs hook: a page quotes a section of README.md, so the two cannot disagree.

A line ``<!-- readme: Security model -->`` on a page is replaced by the body of
the README's section of that title (``## Security model``, or a ``###``
section), up to the next heading of its level or above, its headings moved
so that the section's children sit one level below the page's last heading
above the marker; ``<!-- readme: The API (own text) -->`` stops at the
section's first subsection. Links are made to work on
the site: an anchor naming a README section that some page quotes points to
that page; a link to a page of the site (``docs/stores.md``) points to it; an
image in the repository is copied into the site; any other link into the
repository, or to a section no page quotes, keeps its text only. A
marker naming a section the README does not have stops the build.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from markdown.extensions.toc import slugify
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

_MARKER = re.compile(r"^<!-- readme: (.+?)( \(own text\))? -->$", re.M)
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
_IMAGES = "readme"  # where the README's images go in the site

_readme: dict[str, tuple[int, str]] = {}  # heading title -> (level, section body)
_root = Path()
#: README anchor -> (page src_uri, anchor on that page or "" for the page itself)
_quoted: dict[str, tuple[str, str]] = {}
_HEADING = re.compile(r"^(#{1,6}) (.+)$")


def on_config(config: MkDocsConfig) -> None:
    """Read the README's sections (headings inside code blocks are not headings)."""
    global _root
    _root = Path(config.config_file_path).parent
    _readme.clear()
    open_: list[tuple[int, str, list[str]]] = []
    fenced = False
    for line in (_root / "README.md").read_text(encoding="utf-8").splitlines():
        fenced ^= line.startswith("```")
        heading = None if fenced else re.match(r"(#{2,6}) (.+)", line)
        if heading:
            level = len(heading[1])
            while open_ and open_[-1][0] >= level:
                _keep(*open_.pop())
            for section in open_:
                section[2].append(line)
            open_.append((level, heading[2].strip(), []))
        else:
            for section in open_:
                section[2].append(line)
    for section in open_:
        _keep(*section)


def _keep(level: int, title: str, body: list[str]) -> None:
    """Record a section; of two with one title, the higher heading (as anchors do)."""
    if title not in _readme or _readme[title][0] > level:
        _readme[title] = (level, "\n".join(body))


def _headings(text: str) -> list[tuple[int, str]]:
    """The (level, title) of each heading in ``text``, outside code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        heading = None if fenced else _HEADING.match(line)
        if heading:
            found.append((len(heading[1]), heading[2].strip()))
    return found


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Note where each quoted section lands; add the README's images to the site."""
    _quoted.clear()
    inner: dict[str, tuple[str, str]] = {}  # headings inside quoted sections
    for page in files.documentation_pages():
        text = Path(page.abs_src_path or "").read_text(encoding="utf-8")
        for marker in _MARKER.finditer(text):
            title = marker[1]
            above = _headings(text[: marker.start()])
            host = slugify(above[-1][1], "-") if above and above[-1][0] > 1 else ""
            _quoted[slugify(title, "-")] = (page.src_uri, host)
            own_text = marker[2] is not None  # then no subsection of it is on the page
            for _, heading in [] if own_text else _headings(_readme.get(title, (0, ""))[1]):
                inner.setdefault(slugify(heading, "-"), (page.src_uri, slugify(heading, "-")))
    for slug, place in inner.items():
        _quoted.setdefault(slug, place)
    for path in {m[2] for m in _LINK.findall("\n".join(b for _, b in _readme.values())) if m[0]}:
        source = _root / path
        if not path.startswith(("/", "http")) and source.is_file():
            uri = f"{_IMAGES}/{path}"
            files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files


def _link(match: re.Match[str], page: str) -> str:
    bang, text, target = match.groups()
    if target.startswith(("http://", "https://", "mailto:")):
        return match.group(0)
    if target.startswith("#"):
        if target[1:] not in _quoted:
            return text
        where, anchor = _quoted[target[1:]]
        fragment = f"#{anchor}" if anchor else ""
        if where == page:
            return f"[{text}]({fragment or '#'})"
        return f"[{text}]({posixpath.relpath(where, posixpath.dirname(page) or '.')}{fragment})"
    path, _, fragment = target.partition("#")
    if path.startswith("docs/") and path.endswith(".md"):  # a page of this site
        rel = posixpath.relpath(path[len("docs/") :], posixpath.dirname(page) or ".")
        return f"[{text}]({rel}{'#' + fragment if fragment else ''})"
    if bang and (_root / target).is_file():
        rel = posixpath.relpath(f"{_IMAGES}/{target}", posixpath.dirname(page) or ".")
        return f"![{text}]({rel})"
    return text


def _section(title: str, page: str, base: int, own_text: bool) -> str:
    if title not in _readme:
        known = ", ".join(_readme)
        raise PluginError(f"{page}: README.md has no section {title!r} (it has: {known})")
    level, body = _readme[title]
    lines, fenced = [], False
    for line in body.strip("\n").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            heading = re.match(r"#+", line)
            if heading and own_text:  # the section's own text ends at its first subsection
                break
            if heading:  # one level below the page's heading above the marker
                line = "#" * (len(heading[0]) - level + base) + line[len(heading[0]) :]
            line = _LINK.sub(lambda m: _link(m, page), line)
        lines.append(line)
    return "\n".join(lines).strip("\n")


def _quote(match: re.Match[str], page: str) -> str:
    above = re.findall(r"^(#+) ", re.sub(r"(?ms)^```.*?^```", "", match.string[: match.start()]))
    return _section(match[1], page, len(above[-1]) if above else 1, bool(match[2]))


def on_page_markdown(markdown: str, page: Page, **kwargs: Any) -> str:
    """Replace each marker with the README section it names."""
    return _MARKER.sub(lambda m: _quote(m, page.file.src_uri), markdown)
