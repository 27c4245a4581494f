"""The ``asyncsess`` command, run as a subprocess against stores in ``tmp_path``."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest

import asyncsess
from asyncsess import SessionManager
from asyncsess._progress import Progress

from .conftest import SECRET

COMMANDS = ["demo", "stats", "sweep", "wipe", "revoke-user", "users"]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m asyncsess ARGS`` with no ASYNCSESS_* variables but ``env``, stdin not a TTY."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCSESS_")}
    return subprocess.run(
        [sys.executable, "-m", "asyncsess", *args],
        env=clean | (env or {}),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def seed(url: str, users: Sequence[str], clock: Callable[[], float] | None = None) -> list[str]:
    async def go() -> list[str]:
        mgr = SessionManager(url, secret=SECRET, clock=clock, idle_timeout=600)
        try:
            return [await mgr.create(user) for user in users]
        finally:
            await mgr.aclose()

    return anyio.run(go)


def live(url: str, tokens: Sequence[str]) -> list[bool]:
    async def go() -> list[bool]:
        mgr = SessionManager(url, secret=SECRET, idle_timeout=600)
        try:
            return [await mgr.validate(token) is not None for token in tokens]
        finally:
            await mgr.aclose()

    return anyio.run(go)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return (tmp_path / "sessions").as_uri()


def test_help_for_the_command_and_each_subcommand() -> None:
    top = run("--help")
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
    assert "exit codes: 0 done, 1 failed, 2 usage, 3 refused" in top.stdout
    for command in [*COMMANDS, "users create", "users delete"]:
        result = run(*command.split(), "--help")
        assert result.returncode == 0, command
        assert result.stdout.startswith(f"usage: asyncsess {command}"), command
        assert "--url" in result.stdout


def test_usage_errors_exit_2(url: str) -> None:
    missing = run("sweep")
    assert missing.returncode == 2
    assert missing.stderr == "asyncsess: no store: pass --url URL or set ASYNCSESS_URL\n"
    assert run("frobnicate").returncode == 2
    assert run("revoke-user", "--url", url).returncode == 2  # USER_ID missing
    bogus = run("sweep", "--url", "bogus://x")
    assert bogus.returncode == 2 and "known schemes" in bogus.stderr


def test_wipe_without_yes_refuses_and_deletes_nothing(url: str) -> None:
    tokens = seed(url, ["alice", "bob", "carol"])
    result = run("wipe", "--url", url)
    assert result.returncode == 3
    assert result.stdout == ""
    assert "wipe refused" in result.stderr and "nothing was deleted" in result.stderr
    assert "--yes" in result.stderr
    declined = run("wipe", "--url", url, stdin="yes\n")  # stdin is a pipe, not a terminal
    assert declined.returncode == 3
    assert live(url, tokens) == [True, True, True]


def test_wipe_yes_deletes_every_session(url: str) -> None:
    tokens = seed(url, ["alice", "bob", "carol"])
    result = run("wipe", "--yes", env={"ASYNCSESS_URL": url})
    assert (result.returncode, result.stdout, result.stderr) == (0, "wiped 3 sessions\n", "")
    assert live(url, tokens) == [False, False, False]


def test_revoke_user(url: str) -> None:
    tokens = seed(url, ["alice", "alice", "bob"])
    secret = {"ASYNCSESS_SECRET": SECRET}  # user ids are stored as keyed hashes
    result = run("--url", url, "revoke-user", "alice", env=secret)
    assert (result.returncode, result.stdout) == (0, "revoked 2 sessions\n")
    assert live(url, tokens) == [False, False, True]
    assert run("--url", url, "revoke-user", "nobody", env=secret).stdout == "revoked 0 sessions\n"


def test_sweep_deletes_only_expired_sessions(url: str) -> None:
    expired = seed(url, ["alice", "bob"], clock=lambda: time.time() - 10_000)
    fresh = seed(url, ["carol"])
    result = run("sweep", "--url", url)
    assert (result.returncode, result.stdout) == (0, "swept 2 expired sessions\n")
    assert live(url, fresh) == [True]
    assert run("sweep", "--url", url).stdout == "swept 0 expired sessions\n"
    assert live(url, expired) == [False, False]


def test_stats(url: str) -> None:
    seed(url, ["alice", "bob"], clock=lambda: time.time() - 10_000)
    seed(url, ["carol"])
    result = run("stats", "--url", url)
    assert (result.returncode, result.stdout) == (0, "live 1\nexpired 2\n")


def test_demo() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "revoke    -> True"


def test_users_create_and_delete(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    env = {"ASYNCSESS_URL": db, "ASYNCSESS_SECRET": SECRET}
    password = "s3cret passphrase\n"
    created = run("users", "create", "Alice", "--password-stdin", env=env, stdin=password)
    assert created.returncode == 0, created.stderr
    verb, noun, name, user_id = created.stdout.split()
    assert (verb, noun, name) == ("created", "user", "alice")
    again = run("users", "create", "alice", "--password-stdin", env=env, stdin=password)
    assert again.returncode == 1 and "exists" in again.stderr
    no_password = run("users", "create", "bob", env=env)
    assert no_password.returncode == 2 and "--password-stdin" in no_password.stderr
    tokens = seed(db, [user_id, "someone-else"])
    deleted = run("users", "delete", "ALICE", env=env)
    assert (deleted.returncode, deleted.stdout) == (0, "deleted user alice; revoked 1 sessions\n")
    assert live(db, tokens) == [False, True]
    missing = run("users", "delete", "alice", env=env)
    assert missing.returncode == 1 and "no user named 'alice'" in missing.stderr


def test_users_delete_without_the_secret_refuses_and_deletes_nothing(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    with_secret = {"ASYNCSESS_URL": db, "ASYNCSESS_SECRET": SECRET}
    password = "correct horse battery staple\n"
    created = run("users", "create", "alice", "--password-stdin", env=with_secret, stdin=password)
    assert created.returncode == 0, created.stderr
    user_id = created.stdout.split()[-1]
    tokens = seed(db, [user_id])
    refused = run("users", "delete", "alice", env={"ASYNCSESS_URL": db})
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "needs the secret" in refused.stderr and "nothing was deleted" in refused.stderr
    assert live(db, tokens) == [True]
    deleted = run("users", "delete", "alice", env=with_secret)
    assert (deleted.returncode, deleted.stdout) == (0, "deleted user alice; revoked 1 sessions\n")
    assert live(db, tokens) == [False]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream, total in ((terminal, 4), (pipe, 4)):
        bar = Progress("sweeping", total, stream)
        bar.update(2, force=True)
        bar.close(4)
    assert "sweeping [" in terminal.getvalue() and "100% 4/4" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    assert pipe.getvalue() == ""
    counter = _Terminal()
    Progress("wiping", None, counter).close(1500)
    assert "wiping 1500…" in counter.getvalue()


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"asyncsess {asyncsess.__version__}\n")


@pytest.mark.parametrize("command", [["stats"], ["sweep"], ["wipe", "--yes"], ["revoke-user", "x"]])
def test_a_typo_in_the_url_is_refused_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    env = {"ASYNCSESS_SECRET": SECRET}
    typo = tmp_path / "sesions.db"
    result = run(*command, "--url", f"sqlite+aiosqlite:///{typo}", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert (
        f"no SQLite database at {typo}" in result.stderr and "nothing was created" in result.stderr
    )
    missing_dir = tmp_path / "no-such-dir"
    result = run(*command, "--url", missing_dir.as_uri(), env=env)
    assert result.returncode == 2 and "no session directory at" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_database_without_the_sessions_table_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()  # an existing file, but not an asyncsess database
    url = f"sqlite+aiosqlite:///{db}"
    for command in (["stats"], ["users", "delete", "alice"]):
        result = run(*command, "--url", url, env={"ASYNCSESS_SECRET": SECRET})
        assert result.returncode == 2, result.stderr
        assert "table" in result.stderr and result.stdout == ""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == []  # nothing was created


def test_users_create_and_demo_may_create_a_database(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    url = f"sqlite+aiosqlite:///{db}"
    env = {"ASYNCSESS_SECRET": SECRET}
    created = run("users", "create", "alice", "--password-stdin", "--url", url, env=env,
                  stdin="correct horse battery staple\n")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert run("stats", "--url", url).stdout == "live 0\nexpired 0\n"
    demo = run("demo", "--url", f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", env=env)
    assert demo.returncode == 0, demo.stderr


def test_progress_draws_the_final_state_once() -> None:
    terminal = _Terminal()
    bar = Progress("sweeping", 4, terminal)
    bar.update(4, force=True)
    bar.close(4)
    assert terminal.getvalue().count("4/4") == 1 and terminal.getvalue().endswith("\n")
    late = _Terminal()
    bar = Progress("sweeping", 4, late)
    bar.update(2, force=True)
    bar.close(4)
    assert late.getvalue().count("2/4") == 1 and late.getvalue().count("4/4") == 1


def test_wipe_deletes_sessions_and_keeps_user_accounts(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    env = {"ASYNCSESS_URL": db, "ASYNCSESS_SECRET": SECRET}
    created = run("users", "create", "alice", "--password-stdin", env=env,
                  stdin="correct horse battery staple\n")  # fmt: skip
    assert created.returncode == 0, created.stderr
    tokens = seed(db, [created.stdout.split()[-1]])
    assert "User accounts stay" in run("wipe", "--help").stdout
    assert run("wipe", "--yes", env=env).stdout == "wiped 1 sessions\n"
    assert live(db, tokens) == [False]
    deleted = run("users", "delete", "alice", env=env)  # the account is still there
    assert (deleted.returncode, deleted.stdout) == (0, "deleted user alice; revoked 0 sessions\n")
