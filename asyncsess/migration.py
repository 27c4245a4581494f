"""Copying sessions from one store to another without logging anyone out.

:func:`migrate` reads every record of the source (:meth:`Store.scan`) and
writes it into the target through the target's own ``insert`` and
``replace``, so the target's per-user index is kept as for any write. A record
is copied as it is (key, user reference, sealed payload, version, times): no
secret is needed, nothing is opened, and every token keeps working with a
manager on the target that has the same secret(s) and privacy mode.

A record already in the target under the same key is left alone when it is
the same version (unless the source's expires later: a renewal is carried
over) or newer, and replaced when the source's is newer; so a run can be
interrupted and run again, and it completes what the last one left. Expired
records are not copied.

At the end the live records are counted on both sides at one instant: the
target must hold at least as many as the source, or :class:`MigrationIncomplete`
is raised (sessions created or renewed in the source during the copy: run it
again).

A copy never deletes on its own: a session revoked in the source after it
was copied (a logout) stays live in the target. ``prune=True`` makes the run
a mirror: after the copy, every record of the target whose key the source
does not hold is deleted (at the version it was read at). Run the last pass
with it, the app stopped, so that no logout made during the move is undone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from ._sweeper import Progress
from .config import check_size
from .exceptions import ConfigurationError, MigrationIncomplete, fail_closed
from .stores._registry import open_store
from .stores.base import Record, RecordExists, Store

__all__ = ["MigrationIncomplete", "MigrationResult", "migrate"]

log = logging.getLogger("asyncsess")

Outcome = Literal["copied", "updated", "present", "kept"]


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """What a :func:`migrate` run did, record by record, and the final count.

    ``copied``: inserted into the target; ``updated``: replaced there (the
    source's was newer, or renewed later); ``present``: already there as in
    the source; ``kept``: newer in the target, left alone; ``expired``:
    expired in the source, not copied. ``source_live`` and ``target_live``
    are the live records each store held at the end, counted at one instant.
    """

    copied: int
    updated: int
    present: int
    kept: int
    expired: int
    source_live: int
    target_live: int
    pruned: int = 0

    @property
    def complete(self) -> bool:
        """Whether the target holds at least as many live records as the source."""
        return self.target_live >= self.source_live


async def _put(target: Store, record: Record, there: Record | None) -> Outcome:
    """Write ``record`` into ``target`` given what it holds under that key (``there``)."""
    while True:
        if there is None:
            try:
                await target.insert(record)
            except RecordExists:
                there = await target.get(record.key)
                continue
            return "copied"
        if there.version > record.version:
            return "kept"
        if there.version == record.version and there.expires_at >= record.expires_at:
            return "present"
        if await target.replace(record, expected_version=there.version):
            return "updated"
        there = await target.get(record.key)  # changed meanwhile: judge again


async def _prune(target: Store, keep: set[str], batch: int) -> int:
    """Delete every record of ``target`` whose key is not in ``keep``; return the count."""
    pruned = 0
    async with aclosing(target.scan(batch)) as batches:
        async for records in batches:
            for record in records:
                if record.key not in keep:
                    pruned += await target.delete(record.key, expected_version=record.version)
    return pruned


async def _copy(target: Store, records: list[Record], now: float, tally: dict[str, int]) -> None:
    live = [record for record in records if record.expires_at > now]
    tally["expired"] += len(records) - len(live)
    there = await target.get_many([record.key for record in live])
    for record, found in zip(live, there, strict=True):
        tally[await _put(target, record, found)] += 1


@asynccontextmanager
async def _resolved(
    store: object, options: Mapping[str, Any] | None, role: str
) -> AsyncIterator[Store]:
    """The store named by a URL (closed on the way out) or passed in (left open)."""
    if isinstance(store, str):
        built = open_store(store, **(options or {}))
        try:
            yield built
        finally:
            await built.aclose()
    elif isinstance(store, Store) and not options:
        yield store
    else:
        raise ConfigurationError(
            f"the migration {role} must be a store URL or an asyncsess Store "
            f"({role}_options only apply to a URL), not {type(store).__name__}"
        )


async def migrate(
    source: Store | str,
    target: Store | str,
    *,
    batch: int = 500,
    progress: Progress | None = None,
    prune: bool = False,
    source_options: Mapping[str, Any] | None = None,
    target_options: Mapping[str, Any] | None = None,
) -> MigrationResult:
    """Copy every live session record of ``source`` into ``target``, as it is.

    Each is a store URL (with ``*_options`` for the store, as
    ``store_options`` for a manager; closed at the end) or a
    :class:`~asyncsess.Store` (left open). Records are read ``batch`` at a
    time; ``progress`` is called with the number read so far after each
    batch. No secret is needed: tokens keep working with a manager on the
    target given the same secret(s) and ``privacy_mode`` (a file store that
    sealed under its own key file: its ``await store.key()``). With
    ``prune=True`` the target's records that the source does not hold (ended
    there since an earlier run, or never there) are deleted after the copy.

    Idempotent and resumable (see the module docstring). Raises
    :class:`ConfigurationError` when the two stores keep records in different
    formats (a store in process memory, ``memory://``, keeps them unsealed:
    it can only be copied into another such store),
    :class:`MigrationIncomplete` when the final count finds fewer live
    sessions in the target than in the source, and
    :class:`~asyncsess.StoreError` when a store fails.
    """
    check_size("batch", batch, least=1)
    async with (
        _resolved(source, source_options, "source") as src,
        _resolved(target, target_options, "target") as dst,
    ):
        if type(src).persistent != type(dst).persistent:
            raise ConfigurationError(
                f"cannot migrate from {type(src).__name__} to {type(dst).__name__}: a store in "
                "process memory keeps sessions unsealed and one at rest sealed, so no record "
                "would open on the other side; migrate between two stores at rest"
            )
        result = await _run(src, dst, batch, progress, prune)
    log.info("migration: %s", result)
    if not result.complete:
        raise MigrationIncomplete(result)
    return result


async def _run(
    src: Store, dst: Store, batch: int, progress: Progress | None, prune: bool
) -> MigrationResult:
    tally = dict.fromkeys(("copied", "updated", "present", "kept", "expired"), 0)
    seen: set[str] = set()
    read = 0
    with fail_closed:
        await src.open()
        await dst.open()
    now = time.time()
    async with aclosing(src.scan(batch)) as batches:
        while True:
            with fail_closed:  # store errors only: progress's own go through as they are
                records = await anext(batches, None)
                if records is None:
                    break
                await _copy(dst, records, now, tally)
            if prune:
                seen.update(record.key for record in records)
            read += len(records)
            if progress is not None:
                progress(read)
    with fail_closed:
        pruned = await _prune(dst, seen, batch) if prune else 0
    now = time.time()
    with fail_closed:
        source_live, _ = await src.count(now)
        target_live, _ = await dst.count(now)
    return MigrationResult(**tally, source_live=source_live, target_live=target_live, pruned=pruned)
