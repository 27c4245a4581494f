"""Every project task: ``nox -s tests lint typecheck`` (CI), ``nox -s demo``, ``nox -s bench``."""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]

PYTHONS = ["3.11", "3.12", "3.13"]
PYPROJECT = nox.project.load_toml("pyproject.toml")


def install(session: nox.Session, *groups: str, extras: str = "all") -> None:
    """Install the package (editable, with ``extras``) and the named dependency groups."""
    session.install("--upgrade", "pip")
    session.install("-e", f".[{extras}]" if extras else ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against the real local services.

    The quick soak (marker ``soak``: ~4 minutes of faults under load) runs on the first
    Python only: it tests servers and processes, not the interpreter, on a shared budget.
    """
    install(session, "test")
    once = [] if session.python == PYTHONS[0] else ["-m", "not soak"]
    session.run("pytest", *once, *session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff over everything."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests, examples, benchmarks and this file."""
    install(session, "typecheck")
    session.run("mypy")


@nox.session(python=PYTHONS[0])
def demo(session: nox.Session) -> None:
    """Create, validate, rotate and revoke sessions on the embedded default store."""
    install(session, extras="sql")
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session(python=PYTHONS[0])
def bench(session: nox.Session) -> None:
    """Validate throughput on every store beside the bare client and the peers.

    ``nox -s bench -- --quick`` for a run under two minutes; see ``benchmarks/bench.py``.
    """
    install(session, "bench")
    session.run("python", "-m", "benchmarks.bench", *session.posargs)


@nox.session(python=PYTHONS[0])
def soak(session: nox.Session) -> None:
    """App processes under load while servers fail over, restart and drop connections.

    ``nox -s soak`` (~10 minutes) writes ``benchmarks/results/soak.json`` and ``soak.png``;
    ``nox -s soak -- --quick`` (under 5) is the check CI runs. See ``benchmarks/soak/run.py``.
    """
    install(session, "bench")
    session.run("python", "-m", "benchmarks.soak", *session.posargs)


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """Build the documentation site into ``site/`` (MkDocs, strict: any warning fails).

    The API reference is read from the source by griffe; the package is not imported.
    """
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"))
    # Material's notice about its end of life is not a build warning; keep the log clean.
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})
