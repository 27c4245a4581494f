"""``asyncsess migrate FROM_URL TO_URL``: every session copied to another store, tokens kept.

No secret is needed (records are copied sealed, as they are: see
:mod:`asyncsess.migration`). The source must exist (a SQLite file, a session
directory, an SQL sessions table: else exit 2, nothing created); the target
is created if it is missing. Prints one line of counts; an interrupted run
(exit 130) or an incomplete one (exit 1) is completed by running it again.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from ._progress import tracked
from .migration import MigrationResult, migrate
from .stores._registry import open_store

__all__ = ["add_migrate", "migrate_command"]


def add_migrate(commands: Any) -> None:
    """Add the ``migrate`` command to the parser's subcommands (``commands``)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "migrate",
        help="copy every session to another store (tokens keep working)",
        description="Copy every live session from FROM_URL to TO_URL as it is: sealed, so no "
        "secret is needed and every token keeps working on the target with the same secret. "
        "Sessions already in the target are skipped (or updated if the source's is newer), so "
        "an interrupted run is completed by running it again. Ends with a count of the live "
        "sessions on both sides (exit 1 if the target holds fewer: run it again). Prints "
        "'migrated N sessions: ...'.",
    )
    parser.add_argument("source", metavar="FROM_URL", help="the store to copy from")
    parser.add_argument("target", metavar="TO_URL", help="the store to copy into")
    parser.add_argument(
        "--batch", type=int, default=500, help="records read per round trip (default 500)"
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="then delete the target's sessions that the source does not hold (ended there "
        "since an earlier run): the last run of a move, with the app stopped",
    )


def _line(result: MigrationResult) -> str:
    read = result.copied + result.updated + result.present + result.kept + result.expired
    return (
        f"migrated {read} sessions: {result.copied} copied, {result.updated} updated, "
        f"{result.present} already there, {result.kept} newer in the target kept, "
        f"{result.expired} expired not copied, {result.pruned} pruned; "
        f"live: source {result.source_live}, "
        f"target {result.target_live}"
    )


async def migrate_command(args: argparse.Namespace, source_options: Mapping[str, Any]) -> None:
    """Run ``migrate`` with a progress bar on a terminal; print the counts."""
    source = open_store(args.source, **source_options)
    try:
        target = open_store(args.target)
        try:
            await source.open()
            total = sum(await source.count(time.time()))
            result = await tracked(
                "migrating",
                total,
                lambda bar: migrate(
                    source, target, batch=args.batch, progress=bar, prune=args.prune
                ),
            )
        finally:
            await target.aclose()
    finally:
        await source.aclose()
    print(_line(result))
