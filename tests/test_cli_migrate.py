"""``asyncsess migrate FROM_URL TO_URL``, run as a subprocess on stores in ``tmp_path``."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from asyncsess import SessionManager

from .conftest import SECRET
from .test_cli import live, run

DATA = {"cart": [{"sku": "A1", "qty": 2}], "prefs": {"langs": ["en", "fr"]}}


def seed(url: str, users: list[str | None]) -> list[str]:
    async def go() -> list[str]:
        async with SessionManager(url, secret=SECRET, idle_timeout=600) as mgr:
            return [await mgr.create(user, DATA) for user in users]

    return anyio.run(go)


def user_sessions(url: str, user: str) -> int:
    async def go() -> int:
        async with SessionManager(url, secret=SECRET, idle_timeout=600) as mgr:
            return len(await mgr.sessions(user))

    return anyio.run(go)


def test_migrate_copies_every_session_and_a_second_run_skips_them(tmp_path: Path) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    target = (tmp_path / "sessions").as_uri()
    tokens = seed(source, ["alice", "alice", "bob", None])
    result = run("migrate", source, target)  # no secret anywhere
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "migrated 4 sessions: 4 copied, 0 updated, 0 already there, 0 newer in the target "
        "kept, 0 expired not copied, 0 pruned; live: source 4, target 4\n"
    )
    assert live(target, tokens) == [True] * 4
    assert user_sessions(target, "alice") == 2
    again = run("migrate", source, target, "--batch", "1")
    assert again.returncode == 0
    assert "0 copied, 0 updated, 4 already there" in again.stdout


def revoke(url: str, tokens: list[str]) -> None:
    async def go() -> None:
        async with SessionManager(url, secret=SECRET, idle_timeout=600) as mgr:
            for token in tokens:
                assert await mgr.revoke(token)

    anyio.run(go)


def test_a_logout_between_runs_is_carried_over_only_with_prune(tmp_path: Path) -> None:
    """The move's last run mirrors the source: a session ended there since the first run
    ends in the target too (without --prune it would be live again after the switch)."""
    source = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    target = (tmp_path / "sessions").as_uri()
    tokens = seed(source, ["alice", "alice", "bob"])
    assert run("migrate", source, target).returncode == 0
    revoke(source, tokens[:1])  # alice logs out on one device while the app still runs
    plain = run("migrate", source, target)
    assert plain.returncode == 0 and "0 pruned" in plain.stdout
    assert live(target, tokens) == [True, True, True]  # the logout is undone in the target
    pruned = run("migrate", source, target, "--prune")
    assert (pruned.returncode, pruned.stderr) == (0, "")
    assert "2 already there" in pruned.stdout and "1 pruned; live: source 2, target 2" in (
        pruned.stdout
    )
    assert live(target, tokens) == [False, True, True]
    assert user_sessions(target, "alice") == 1
    assert live(source, tokens) == [False, True, True]  # the source is never written


def test_a_missing_source_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    target = tmp_path / "new.db"
    typo = run("migrate", f"sqlite:///{tmp_path / 'ap.db'}", f"sqlite:///{target}")
    assert typo.returncode == 2 and "no SQLite database at" in typo.stderr
    no_dir = run("migrate", (tmp_path / "nowhere").as_uri(), f"sqlite:///{target}")
    assert no_dir.returncode == 2 and "no session directory at" in no_dir.stderr
    assert list(tmp_path.iterdir()) == []


def test_memory_and_a_store_at_rest_are_refused(tmp_path: Path) -> None:
    result = run("migrate", "memory://", f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 2 and "process memory keeps sessions unsealed" in result.stderr
    assert run("migrate", "memory://", "memory://", "--batch", "0").returncode == 2


def _read_until(fd: int, wanted: bytes, seconds: float) -> bytes:
    """Read the terminal until ``wanted`` shows (or the time is up)."""
    seen, deadline = b"", time.monotonic() + seconds
    while wanted not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            with contextlib.suppress(OSError):  # EIO: the child closed the terminal
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                seen += chunk
    return seen


def test_an_interrupted_run_is_completed_by_the_next(tmp_path: Path) -> None:
    """Ctrl-C in the middle (the bar on a terminal shows how far it got): exit 130; the
    next run copies only the rest, and every token works on the target."""
    source = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    target = (tmp_path / "sessions").as_uri()
    tokens = seed(source, [f"user-{i % 50}" for i in range(1500)])
    controller, terminal = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCSESS_")}
    with subprocess.Popen(
        [sys.executable, "-m", "asyncsess", "migrate", source, target, "--batch", "10"],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=clean,
        text=True,
    ) as child:
        os.close(terminal)
        try:
            drawn = _read_until(controller, b"/1500", 60)
            child.send_signal(signal.SIGINT)
            rest, _ = child.communicate(timeout=60)
            drawn += _read_until(controller, b"interrupted", 10)
        finally:
            os.close(controller)
    assert b"migrating [" in drawn and b"/1500" in drawn
    assert child.returncode == 130 and rest == "" and b"asyncsess: interrupted" in drawn
    again = run("migrate", source, target)
    assert again.returncode == 0, again.stderr
    counts = again.stdout.split(": ")[1].split(", ")
    copied, present = int(counts[0].split()[0]), int(counts[2].split()[0])
    assert copied > 0 and present > 0 and copied + present == 1500
    assert again.stdout.endswith("live: source 1500, target 1500\n")
    assert live(target, tokens[::100]) == [True] * 15
