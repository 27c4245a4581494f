"""``file:///path``: one file per session in a private directory, safe across processes.

Layout under the root (directories 0700, files 0600)::

    .key                      the store's own secret (:meth:`FileStore.key`), if asked for
    s/<key[:2]>/<key>         one session record (JSON), replaced atomically
    u/<h[:2]>/<h>/<key>       empty marker: session <key> belongs to user hash <h>
                              (none for a session without a user)

Writes go to a temporary file that is fsynced and renamed over the target.
Every rewrite or deletion of an existing record holds ``flock`` on it and
re-checks, after locking, that the path still names the locked inode, so two
processes sharing the directory neither lose a compare-and-set update nor
resurrect a deleted session. A rewrite that moves a record to another user
reference adds the new marker before and removes the old one after writing,
holding the record's lock; deleting a user's sessions re-checks each record's
owner under its lock (a marker left stale by a crash is then removed). Each
operation is one call to a worker thread (through ``aiofiles``). A file that
does not parse is treated as missing and removed. POSIX only (``fcntl``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar, TypeVarTuple
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from aiofiles.os import wrap

from ..exceptions import ConfigurationError
from ._file_tree import FileTree
from .base import Record, Renewal, Store

__all__ = ["FileStore"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _call(fn: Callable[[*Ts], T], *args: *Ts) -> T:
    return fn(*args)


_offload = wrap(_call)


async def _thread(fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """Run ``fn(*args)`` in a worker thread (aiofiles' executor): one hop per operation."""
    result: T = await _offload(fn, *args)
    return result


class FileStore(Store):
    """Sessions as files under ``root`` (the blocking work is :class:`._file_tree.FileTree`'s)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self._tree = FileTree(self.root, fsync=fsync)

    @property
    def fsync(self) -> bool:
        """Whether each write is fsynced before it is renamed into place."""
        return self._tree.fsync

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``file:///absolute/path`` (``file:relative/path`` also works)."""
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigurationError(
                f"file store URL {url!r} must name a directory: file:///var/lib/app/sessions"
            )
        return cls(url2pathname(unquote(parts.path)), **options)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    async def open(self) -> None:
        """Create the private directory tree."""
        await _thread(self._tree.open)

    async def key(self) -> bytes:
        """Return the secret in the store's key file ``<root>/.key`` (32 random bytes,
        created 0600 on first use; every process sharing the directory reads the same).

        For an application with no secret of its own:
        ``SessionManager(store, secret=await store.key())``. Sessions sealed under it
        open only while the file is kept; a file shorter than the minimum secret is a
        :class:`~asyncsess.ConfigurationError`.
        """
        await _thread(self._tree.open)
        return await _thread(self._tree.secret)

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        """Read one record (one worker-thread call), renewing it under lock if due."""
        return await _thread(self._tree.get, key, renew)

    async def get_many(
        self, keys: Sequence[str], *, renew: Renewal | None = None
    ) -> list[Record | None]:
        """Read several records in one worker-thread call."""
        return await _thread(self._tree.get_many, keys, renew)

    async def insert(self, record: Record) -> None:
        """Write the user marker, then the record; :class:`RecordExists` if the key is taken."""
        await _thread(self._tree.insert, record)

    async def replace(self, record: Record, *, expected_version: int) -> bool:
        """Rewrite ``record.key`` under lock if it is at ``expected_version``."""
        return await _thread(self._tree.replace, record, expected_version)

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Delete one record under its lock (if it is at ``expected_version``, when given)."""
        return await _thread(self._tree.remove, key, expected_version)

    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        """Delete the user's sessions listed by their markers."""
        return await _thread(self._tree.delete_user, user_ref, keep)

    async def list_user(self, user_ref: str) -> list[Record]:
        """Read the user's sessions listed by their markers."""
        return await _thread(self._tree.list_user, user_ref)

    async def sweep(self, now: float, *, limit: int) -> int:
        """Delete at most ``limit`` expired records."""
        return await _thread(self._tree.sweep, now, limit)

    async def count(self, now: float) -> tuple[int, int]:
        """Read every record's expiry (one worker-thread call)."""
        return await _thread(self._tree.count, now)

    async def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        """List the session files (one worker-thread call), then read ``batch`` per call."""
        names = await _thread(self._tree.names)
        for start in range(0, len(names), batch):
            records = await _thread(self._tree.get_many, names[start : start + batch], None)
            if found := [record for record in records if record is not None]:
                yield found

    async def wipe(self) -> int:
        """Delete every session file and marker (the key file stays)."""
        return await _thread(self._tree.wipe)
