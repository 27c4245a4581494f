"""Every Python code block of the documentation runs: the pages under ``docs/`` and the
README, whose sections the pages quote (``docs/_ext/readme.py``).

Each block runs alone in a fresh interpreter, in an empty working directory
(its SQLite files land there), with ``ASYNCSESS_SECRET`` set and top-level
``await`` allowed (the blocks that show calls without an ``async def`` around
them). A block may use the placeholders a reader fills in, defined in
:data:`PLACEHOLDERS`. Services are the loopback ones the test suite uses.
A block that subclasses ``StoreContract`` is a test module: it runs under
pytest, and every rule must pass. The docs' third-party store,
``asyncsess_dynamodb.DynamoStore``, is stood in by the memory store.

The README's table of defaults is checked against the code: each row names
the classes and the parameter, and the default as a Python expression.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from asyncsess.testing import RULES

from .conftest import SECRET

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_OUTPUT = re.compile(r"\n*```text\n(.*?)^```$", re.S | re.M)  # what the block prints

#: What a block may leave for the reader to fill in.
PLACEHOLDERS = {
    "SECRET": SECRET,
    "NEW_SECRET": "new-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
    "OLD_SECRET": SECRET,
    "KEY": SECRET,
    "user_id": "user-123",
    "remote_addr": "203.0.113.7",
    "cookie_or_none": None,
    "cart": [{"sku": "A1", "qty": 2}],
}
RUNNER = """
import ast, asyncio, sys
namespace = {"__name__": "__main__", **PLACEHOLDERS}
source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, sys.argv[2], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, namespace)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""
STAND_IN = '''
"""The docs' third-party store, stood in by the memory store."""
from asyncsess.stores.memory import MemoryStore


class DynamoStore(MemoryStore):
    @classmethod
    def from_url(cls, url, **options):
        return cls()
'''


def _blocks() -> list[Any]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            name = f"{page.relative_to(ROOT)}:{line}"
            output = _OUTPUT.match(text, match.end() + 1)
            printed = output[1] if output else None
            found.append(pytest.param(match[1], name, printed, id=name))
    return found


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCSESS_")}
    env |= {"ASYNCSESS_SECRET": SECRET, "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(("code", "where", "printed"), _blocks())
def test_code_block_runs(
    code: str, where: str, printed: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The block runs; when a ``text`` block follows it, that is what it prints."""
    if re.search(r"redis://|\"redis\"", code):  # the loopback Redis (skipped if down, not on CI)
        request.getfixturevalue("redis_server_url")
    (tmp_path / "asyncsess_dynamodb.py").write_text(STAND_IN)
    if "(StoreContract)" in code:
        (tmp_path / "test_block.py").write_text(code)
        result = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
        assert f"{len(RULES)} passed" in result.stdout, result.stdout[-3000:]
        return
    (tmp_path / "block.py").write_text(code)
    runner = f"PLACEHOLDERS = {PLACEHOLDERS!r}\n{RUNNER}"
    result = _run([sys.executable, "-c", runner, "block.py", where], tmp_path)
    assert result.returncode == 0, f"{where}:\n{textwrap.indent(code, '  ')}\n{result.stderr}"
    if printed is not None:
        assert result.stdout == printed


def test_every_page_has_its_blocks_counted() -> None:
    """The block pattern finds every fence that says python (none is skipped)."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert len(_BLOCK.findall(text)) == text.count("```python\n"), page.name


def _defaults_table() -> list[tuple[list[str], str, str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Defaults\n") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| ([^|]+) \| `([a-z_]+)` \| `([^`]+)` \|", section, re.M)
    return [(re.findall(r"`([\w.]+)`", owners), name, value) for owners, name, value in rows]


def _owner(name: str) -> Any:
    import asyncsess
    import asyncsess.accounts
    import asyncsess.accounts.devices
    import asyncsess.integrations.starlette
    import asyncsess.stores.file
    import asyncsess.stores.mongo
    import asyncsess.stores.redis
    import asyncsess.stores.sql

    for module in (
        asyncsess,
        asyncsess.accounts,
        asyncsess.accounts.devices,
        asyncsess.integrations.starlette,
        asyncsess.stores.file,
        asyncsess.stores.redis,
        asyncsess.stores.sql,
        asyncsess.stores.mongo,
    ):
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"the defaults table names {name}, which asyncsess does not export")


def test_the_readme_defaults_are_the_code_defaults() -> None:
    rows = _defaults_table()
    assert len(rows) >= 20
    for owners, name, value in rows:
        assert owners, name
        expected = eval(value, {"timedelta": timedelta})  # the README's own expression
        for owner in owners:
            parameter = inspect.signature(_owner(owner)).parameters[name]
            assert parameter.default == expected, f"{owner}({name}=...) defaults to {parameter}"
