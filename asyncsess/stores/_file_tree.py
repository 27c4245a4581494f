"""The file store's blocking half: the record file format and the directory it lives in.

Every method runs whole in one worker thread (see :class:`~asyncsess.stores.file.FileStore`,
which calls each once per operation). A record is the JSON
``{"u": user_ref, "v": version, "c": created_at, "e": expires_at, "a": absolute_at,
"p": base64(payload)}``; the layout, the atomic writes and the locking are described
in :mod:`asyncsess.stores.file`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from ..exceptions import ConfigurationError
from ..sealing import MIN_SECRET_BYTES
from .base import Record, RecordExists, Renewal

__all__ = ["FileTree", "decode", "encode"]

T = TypeVar("T")
_TMP_MAX_AGE = 3600.0
_READ = 16384  # bytes per read() call: a record in one call, most of the time


def _read_all(fd: int) -> bytes:
    chunk = os.read(fd, _READ)
    if len(chunk) < _READ:  # a regular file reads short only at its end
        return chunk
    chunks = [chunk]
    while chunk := os.read(fd, _READ):
        chunks.append(chunk)
    return b"".join(chunks)


def encode(record: Record) -> bytes:
    return json.dumps(
        {
            "u": record.user_ref,
            "v": record.version,
            "c": record.created_at,
            "e": record.expires_at,
            "a": record.absolute_at,
            "p": base64.b64encode(record.payload).decode("ascii"),
        },
        separators=(",", ":"),
    ).encode()


def decode(key: str, raw: bytes) -> Record | None:
    try:
        d = json.loads(raw)
        return Record(
            key,
            str(d["u"]),
            base64.b64decode(d["p"], validate=True),
            int(d["v"]),
            float(d["c"]),
            float(d["e"]),
            float(d["a"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


class FileTree:
    """The blocking operations on one store directory (``root``), one worker-thread call each."""

    def __init__(self, root: Path, *, fsync: bool) -> None:
        self.root = root
        self.fsync = fsync
        self._sessions = root / "s"
        self._users = root / "u"
        self._prefix = f"{self._sessions}{os.sep}"  # reads build their path as a str

    def _path(self, key: str) -> Path:
        return self._sessions / key[:2] / key

    def _user_dir(self, user_ref: str) -> Path:
        h = hashlib.sha256(user_ref.encode()).hexdigest()
        return self._users / h[:2] / h

    def _write(self, path: Path, data: bytes, *, new: bool = False) -> None:
        """Write ``data`` to a temporary file, then rename it over ``path`` (``new``: link it
        there, raising :class:`FileExistsError` if ``path`` exists)."""
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if not new:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        finally:
            tmp.unlink()

    def _locked(self, key: str, action: Callable[[Path, Record | None], T]) -> T:
        """Run ``action(path, current record or None)`` holding the record's lock."""
        path = self._path(key)
        while True:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return action(path, None)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino:
                        continue  # replaced while we waited: lock the new file
                except FileNotFoundError:
                    return action(path, None)
                with os.fdopen(os.dup(fd), "rb") as f:
                    record = decode(key, f.read())
                if record is None:
                    path.unlink(missing_ok=True)
                return action(path, record)
            finally:
                os.close(fd)

    def _read(self, key: str) -> Record | None:
        # the hot path of every read: os calls on a str path (pathlib costs 3 times as much)
        try:
            fd = os.open(f"{self._prefix}{key[:2]}{os.sep}{key}", os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            raw = _read_all(fd)
        finally:
            os.close(fd)
        record = decode(key, raw)
        if record is None:
            self._locked(key, lambda p, r: None)  # re-read under lock; removes it if still bad
        return record

    def _mark(self, record: Record) -> None:
        if not record.user_ref:
            return  # a session without a user is in no user's index
        marker = self._user_dir(record.user_ref) / record.key
        for _ in range(10):
            marker.parent.parent.mkdir(mode=0o700, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                marker.parent.mkdir(mode=0o700)
            try:
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
                return
            except FileNotFoundError:
                continue  # the user's directory was pruned in between

    def _unmark(self, user_ref: str, key: str) -> None:
        if not user_ref:
            return
        user_dir = self._user_dir(user_ref)
        (user_dir / key).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            user_dir.rmdir()

    def remove(self, key: str, expected_version: int | None = None, owner: str = "") -> bool:
        """Delete ``key`` under its lock if it is at ``expected_version`` and ``owner``'s."""

        def remove_locked(path: Path, record: Record | None) -> bool:
            if record is None or expected_version not in (None, record.version):
                return False
            if owner and record.user_ref != owner:  # a stale marker: the record moved
                self._unmark(owner, key)
                return False
            path.unlink()
            self._unmark(record.user_ref, record.key)
            return True

        return self._locked(key, remove_locked)

    # -- one operation each ----------------------------------------------

    def open(self) -> None:
        for d in (self.root, self._sessions, self._users):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def secret(self) -> bytes:
        path = self.root / ".key"
        if not path.exists():
            with contextlib.suppress(FileExistsError):  # the first process wins, the others
                self._write(path, secrets.token_bytes(32), new=True)  # read its key
        return self._checked_secret(path, path.read_bytes())

    @staticmethod
    def _checked_secret(path: Path, secret: bytes) -> bytes:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"the file store's key file {path} holds {len(secret)} bytes, fewer than "
                f"{MIN_SECRET_BYTES}: pass secret=... (sessions sealed under that key stop "
                "opening), or remove the file to have a new key made"
            )
        return secret

    def get(self, key: str, renew: Renewal | None) -> Record | None:
        record = self._read(key)
        if record is None or renew is None or renew.apply(record) is None:
            return record

        def renew_locked(path: Path, current: Record | None) -> Record | None:
            renewed = None if current is None else renew.apply(current)
            if renewed is not None:
                self._write(path, encode(renewed))
                return renewed
            return current

        return self._locked(key, renew_locked)

    def get_many(self, keys: Sequence[str], renew: Renewal | None) -> list[Record | None]:
        return [self.get(key, renew) for key in keys]

    def insert(self, record: Record) -> None:
        path = self._path(record.key)
        if path.exists():
            raise RecordExists("a session record with this key exists already")
        self._mark(record)  # the marker first: never a record its user cannot find
        path.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            self._write(path, encode(record), new=True)
        except FileExistsError:  # inserted meanwhile: its marker (if the same user's) stays
            current = self._read(record.key)
            if current is None or current.user_ref != record.user_ref:
                self._unmark(record.user_ref, record.key)
            raise RecordExists("a session record with this key exists already") from None

    def replace(self, record: Record, expected_version: int) -> bool:
        def cas(path: Path, current: Record | None) -> bool:
            if current is None or current.version != expected_version:
                return False
            moved = current.user_ref != record.user_ref
            if moved:
                self._mark(record)
            self._write(path, encode(record))
            if moved:
                self._unmark(current.user_ref, current.key)
            return True

        return self._locked(record.key, cas)

    def _markers(self, user_ref: str) -> list[str]:
        try:
            return [n for n in os.listdir(self._user_dir(user_ref)) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def delete_user(self, user_ref: str, keep: str | None) -> int:
        return sum(
            self.remove(key, owner=user_ref) for key in self._markers(user_ref) if key != keep
        )

    def list_user(self, user_ref: str) -> list[Record]:
        records = []
        for key in self._markers(user_ref):
            record = self._read(key)
            if record is None:
                (self._user_dir(user_ref) / key).unlink(missing_ok=True)
            elif record.user_ref == user_ref:  # else moved to another reference meanwhile
                records.append(record)
        return records

    def _session_files(self) -> Iterator[tuple[str, Path]]:
        with contextlib.suppress(FileNotFoundError), os.scandir(self._sessions) as shards:
            for shard in shards:
                with contextlib.suppress(FileNotFoundError), os.scandir(shard.path) as entries:
                    yield from ((e.name, Path(e.path)) for e in entries)

    def sweep(self, now: float, limit: int) -> int:
        def remove_expired(path: Path, record: Record | None) -> bool:
            if record is None or record.expires_at > now:
                return False
            path.unlink()
            self._unmark(record.user_ref, record.key)
            return True

        removed = 0
        for name, path in self._session_files():
            if name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    # an abandoned write; file times are wall-clock, not the manager's clock
                    if path.stat().st_mtime < time.time() - _TMP_MAX_AGE:
                        path.unlink()
                continue
            record = self._read(name)
            if record is not None and record.expires_at <= now:
                removed += self._locked(name, remove_expired)
                if removed >= limit:
                    break
        return removed

    def count(self, now: float) -> tuple[int, int]:
        live = expired = 0
        for name, _ in self._session_files():
            record = None if name.endswith(".tmp") else self._read(name)
            if record is not None:
                live += record.expires_at > now
                expired += record.expires_at <= now
        return live, expired

    def wipe(self) -> int:
        removed = sum(
            self.remove(name) for name, _ in self._session_files() if not name.endswith(".tmp")
        )
        for dirpath, _dirs, filenames in os.walk(self._users, topdown=False):
            for name in filenames:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
            if dirpath != str(self._users):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
        return removed

    def names(self) -> list[str]:
        """The keys of the session files (no temporary files)."""
        return [name for name, _ in self._session_files() if not name.endswith(".tmp")]
