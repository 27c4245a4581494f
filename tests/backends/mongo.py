"""MongoDB for the tests: a real server from ``ASYNCSESS_TEST_MONGODB_URL``, else a
wire-protocol server (``mongoeco[wire]``, in memory, Python >= 3.13) started on loopback.

The wire server runs from a virtualenv this module provisions once in a cache dir
(``$ASYNCSESS_TEST_CACHE``, else ``$XDG_CACHE_HOME/asyncsess``, else
``~/.cache/asyncsess``) with a Python >= 3.13: ``$ASYNCSESS_MONGOECO_PYTHON``, this
interpreter, pyenv's newest-but-oldest 3.13+ or ``python3.13`` on ``PATH``. Run
``python -m tests.backends.mongo`` to provision ahead of the test run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from . import StoreSpec, unavailable

URL_ENV = "ASYNCSESS_TEST_MONGODB_URL"
PYTHON_ENV = "ASYNCSESS_MONGOECO_PYTHON"
REQUIREMENT = "mongoeco[wire]==4.11.0"
LAUNCHER = Path(__file__).resolve().parents[1] / "mongo_wire_server.py"
WHAT = "MongoDB test server"
HOW = (
    f"install pyenv's Python 3.13 (pyenv install 3.13) so the tests can install {REQUIREMENT} "
    f"themselves, or set {URL_ENV}=mongodb://host:port to a MongoDB server"
)
_PROVISIONED = pytest.StashKey[tuple[str | None, str | None]]()


class ProvisionError(RuntimeError):
    """The wire server's Python environment could not be set up."""


def _run(args: list[str], timeout: float, **env: str) -> str:
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )
    if result.returncode:
        raise ProvisionError(f"{' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip()


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = _run([python, "-c", "import sys; print(*sys.version_info[:2])"], 30)
    except (OSError, subprocess.SubprocessError, ProvisionError):
        return None
    major, minor = map(int, out.split())
    return major, minor


def find_python() -> str | None:
    """Return a Python >= 3.13 to run the wire server with, or ``None``."""
    if explicit := os.environ.get(PYTHON_ENV):
        return explicit
    if sys.version_info >= (3, 13):
        return sys.executable
    candidates: list[str] = []
    if pyenv := shutil.which("pyenv"):
        with contextlib.suppress(OSError, subprocess.SubprocessError, ProvisionError):
            found = []
            for name in _run([pyenv, "versions", "--bare"], 30).split():
                if m := re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", name):
                    found.append((tuple(map(int, m.groups())), name))
            for version, name in sorted(found):  # oldest first: wheels exist for it
                if version >= (3, 13):
                    with contextlib.suppress(ProvisionError):
                        candidates.append(_run([pyenv, "which", "python"], 30, PYENV_VERSION=name))
    candidates += filter(None, (shutil.which(f"python3.{minor}") for minor in (13, 14)))
    return next((c for c in candidates if (_version(c) or (0, 0)) >= (3, 13)), None)


def cache_dir() -> Path:
    """Where the wire server's virtualenv lives (kept across runs)."""
    if explicit := os.environ.get("ASYNCSESS_TEST_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "asyncsess"


def provision() -> str:
    """Return the path of a Python that can run the wire server, installing it once."""
    python = find_python()
    if python is None:
        raise ProvisionError("no Python >= 3.13 found")
    if os.environ.get(PYTHON_ENV):
        return python  # the caller provides mongoeco[wire] there
    version = _version(python)
    if version is None or version < (3, 13):
        raise ProvisionError(f"{python} is not a Python >= 3.13")
    venv = cache_dir() / f"mongoeco-py{version[0]}.{version[1]}"
    bindir = "Scripts" if os.name == "nt" else "bin"
    venv_python = str(venv / bindir / "python")
    marker = venv / ".asyncsess-ready"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time (parallel nox sessions)
        if marker.exists() and marker.read_text() == REQUIREMENT:
            return venv_python
        shutil.rmtree(venv, ignore_errors=True)
        _run([python, "-m", "venv", str(venv)], 300)
        _run(
            [
                venv_python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                REQUIREMENT,
            ],
            900,
        )
        marker.write_text(REQUIREMENT)
    return venv_python


def _wants_mongodb(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return "mongodb_server_url" in names or "mongodb" in item.nodeid.lower()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Provision before the first test runs, outside any per-test timeout."""
    if os.environ.get(URL_ENV) or not any(_wants_mongodb(item) for item in session.items):
        return
    try:
        session.config.stash[_PROVISIONED] = (provision(), None)
    except (OSError, subprocess.SubprocessError, ProvisionError) as exc:
        session.config.stash[_PROVISIONED] = (None, f"{type(exc).__name__}: {exc}")


def ping(url: str, deadline: float) -> str | None:
    """Ping ``url`` until it answers or ``deadline`` (monotonic) passes; the last error or None."""
    error = "no attempt"
    client: MongoClient[dict[str, object]]
    with MongoClient(url, serverSelectionTimeoutMS=500, timeoutMS=2000) as client:
        while time.monotonic() < deadline:
            try:
                client.admin.command("ping")
            except PyMongoError as exc:
                error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
            else:
                return None
    return error


@contextlib.contextmanager
def wire_server(python: str, log: Path, port: int = 0) -> Iterator[str]:
    """Run the wire server until the block ends; yield its URL (no database in the path)."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [python, str(LAUNCHER), "--port", str(port), "--parent-pipe"],
            stdin=subprocess.PIPE,  # closed when this process ends, however it ends
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = b""
        if select.select([proc.stdout], [], [], 60)[0]:
            line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise ProvisionError(f"the wire server did not start: {log.read_text()[-2000:]}")
        url = f"mongodb://127.0.0.1:{int(line)}/?directConnection=true"
        if error := ping(url, time.monotonic() + 30):
            raise ProvisionError(f"the wire server does not answer a ping: {error}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()


@pytest.fixture(scope="session")
def mongodb_python(request: pytest.FixtureRequest) -> str:
    """A Python that runs ``tests/mongo_wire_server.py`` (provisioned once)."""
    python, error = request.config.stash.get(_PROVISIONED, (None, None))
    if python is None and error is None:
        try:
            python = provision()
        except (OSError, subprocess.SubprocessError, ProvisionError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    if python is None:
        unavailable(WHAT, f"{HOW} ({error})")
    assert python is not None
    return python


@pytest.fixture(scope="session")
def mongodb_server_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server's URL: ``ASYNCSESS_TEST_MONGODB_URL``, or a wire server run for the session."""
    if url := os.environ.get(URL_ENV):
        if error := ping(url, time.monotonic() + 10):
            unavailable(WHAT, f"{URL_ENV}={url!r} does not answer: {error}")
        yield url
        return
    python: str = request.getfixturevalue("mongodb_python")
    log = tmp_path_factory.mktemp("mongodb") / "wire-server.log"
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(wire_server(python, log))
        except (OSError, subprocess.SubprocessError, ProvisionError) as exc:
            unavailable(WHAT, f"{HOW} ({type(exc).__name__}: {exc})")
            raise
        yield url


@pytest.fixture(scope="session")
def mongodb_admin(mongodb_server_url: str) -> Iterator[MongoClient[dict[str, object]]]:
    """A synchronous client for set-up, inspection and clean-up."""
    client: MongoClient[dict[str, object]]
    with MongoClient(mongodb_server_url, timeoutMS=10_000) as client:
        yield client


def with_database(url: str, database: str) -> str:
    """``url`` with its path (the database name) replaced."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture
def mongodb_database(mongodb_admin: MongoClient[dict[str, object]]) -> Iterator[str]:
    """A fresh database name for one test, dropped afterwards."""
    name = f"asyncsess_test_{uuid.uuid4().hex[:12]}"
    yield name
    mongodb_admin.drop_database(name)


@pytest.fixture
def mongodb_store_spec(mongodb_server_url: str, mongodb_database: str) -> Iterator[StoreSpec]:
    """A ``mongodb://`` store in a database of its own."""
    # The wire server is one Python process: a thousand concurrent calls queue for seconds.
    options = {} if os.environ.get(URL_ENV) else {"timeout": 30.0}
    yield StoreSpec(with_database(mongodb_server_url, mongodb_database), options)


if __name__ == "__main__":  # python -m tests.backends.mongo: provision ahead of the tests
    print(provision())
