"""File store beyond the conformance suite: privacy at rest, permissions, damage, processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from asyncsess import ConfigurationError, SessionManager, open_store
from asyncsess.stores.file import FileStore
from asyncsess.tokens import token_key
from tests.conftest import SECRET

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def every_byte(root: Path) -> bytes:
    return b"".join(p.read_bytes() + p.name.encode() for p in root.rglob("*") if p.is_file())


async def test_nothing_readable_at_rest(tmp_path: Path) -> None:
    user_id = "alice.liddell@example.org"
    values = ["wonderland-secret-value", "queen-of-hearts-42"]
    mgr = SessionManager(tmp_path.as_uri(), secret=SECRET)
    tokens = [await mgr.create(user_id, {"a": values[0], "b": values[1]}) for _ in range(3)]
    await mgr.update(tokens[0], {"a": values[0], "b": values[1], "c": 1})
    rotated = await mgr.rotate(tokens[1])
    assert rotated is not None
    tokens.append(rotated)
    await mgr.aclose()
    blob = every_byte(tmp_path) + "".join(str(p) for p in tmp_path.rglob("*")).encode()
    assert blob
    for needle in [user_id, *values, *tokens]:
        assert needle.encode() not in blob
        assert needle.encode().hex().encode() not in blob


async def test_privacy_mode_off_stores_clear_data(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    mgr = SessionManager(store, privacy_mode=False)
    token = await mgr.create("alice", {"k": "visible-value"})
    assert token.encode() not in every_byte(tmp_path)  # only ever the hash
    record = await store.get(token_key(token))
    assert record is not None and record.user_ref == "alice"
    assert json.loads(record.payload) == {"u": "alice", "d": {"k": "visible-value"}}


async def test_permissions_and_key_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    mgr = SessionManager(root.as_uri())
    await mgr.create("alice")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    key = root / ".key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    for path in root.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    # a second manager on the same directory reuses the key file
    token = await mgr.create("alice")
    again = SessionManager(root.as_uri())
    assert await again.validate(token) is not None


@pytest.mark.parametrize("content", [b"", b"short", b"\x00" * 31])
async def test_a_short_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o700)
    (root / ".key").write_bytes(content)
    mgr = SessionManager(root.as_uri())
    with pytest.raises(ConfigurationError, match=f"holds {len(content)} bytes, fewer than 32"):
        await mgr.create("alice", {"k": ["v"]})
    assert not (root / "s").exists() or not any((root / "s").rglob("*"))


@pytest.mark.parametrize("damage", [b"", b"{", b'{"u": 1}', b"\x00\xff" * 40, b"[1,2,3]"])
async def test_damaged_files_are_invalid_and_cleaned(tmp_path: Path, damage: bytes) -> None:
    mgr = SessionManager(tmp_path.as_uri(), secret=SECRET)
    token = await mgr.create("alice")
    other = await mgr.create("alice")
    path = next(p for p in tmp_path.rglob(token_key(token)) if p.parent.parent.name == "s")
    path.write_bytes(damage)
    assert await mgr.validate(token) is None
    assert not path.exists()
    assert await mgr.validate(other) is not None
    assert [i.id for i in await mgr.sessions("alice")] == [token_key(other)]


async def test_truncated_file_is_invalid(tmp_path: Path) -> None:
    mgr = SessionManager(tmp_path.as_uri(), secret=SECRET)
    token = await mgr.create("alice", {"x": "y" * 100})
    path = next(p for p in tmp_path.rglob(token_key(token)) if p.parent.parent.name == "s")
    path.write_bytes(path.read_bytes()[:-20])
    assert await mgr.validate(token) is None
    assert await mgr.revoke(token) is False


def test_bad_file_url() -> None:
    with pytest.raises(ConfigurationError, match="file:///"):
        open_store("file://remote-host/sessions")


async def test_open_store_builds_file_store(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri(), fsync=False)
    assert isinstance(store, FileStore) and store.root == tmp_path and store.fsync is False


def test_two_processes_share_one_directory(tmp_path: Path) -> None:
    url = (tmp_path / "shared").as_uri()

    async def setup() -> str:
        mgr = SessionManager(url)
        token = await mgr.create("shared-user", {"last": None})
        await mgr.aclose()
        return token

    import anyio

    shared = anyio.run(setup)
    count = 120
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.stores._file_worker", url, name, shared, str(count)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for name in ("p1", "p2")
    ]
    outputs = [json.loads(p.communicate(timeout=90)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]

    async def check() -> None:
        mgr = SessionManager(url)
        for name, out in zip(("p1", "p2"), outputs, strict=True):
            live = set(out["created"]) - set(out["revoked"])
            assert len(live) == count // 2
            for token in out["created"]:
                assert (await mgr.validate(token) is not None) is (token in live)
            listed = {i.id for i in await mgr.sessions(f"{name}-user")}
            assert listed == {token_key(t) for t in live}
        session = await mgr.validate(shared)
        assert session is not None
        assert session.version == 1 + sum(out["updates"] for out in outputs) == 1 + 2 * (count // 4)
        await mgr.aclose()

    anyio.run(check)


async def test_sweep_removes_only_abandoned_temp_files(tmp_path: Path) -> None:
    mgr = SessionManager(tmp_path.as_uri(), secret=SECRET, clock=lambda: 4_000_000_000.0)
    token = await mgr.create("alice")
    shard = next(p for p in tmp_path.rglob(token_key(token)) if p.parent.parent.name == "s").parent
    fresh, stale = shard / ".fresh.tmp", shard / ".stale.tmp"
    fresh.write_bytes(b"being written")
    stale.write_bytes(b"abandoned")
    os.utime(stale, (0, 0))
    await mgr.sweep()
    assert fresh.exists() and not stale.exists()
