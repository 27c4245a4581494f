"""The ``asyncsess`` command: session-store chores from a shell (also ``python -m asyncsess``).

Every command takes the store as ``--url`` or ``ASYNCSESS_URL`` and the
secret(s) as ``--secret`` or ``ASYNCSESS_SECRET`` (prefer the variable: a
command line is visible to other users); the other ``ASYNCSESS_*`` settings
apply too. ``sweep``, ``wipe`` and ``stats`` need no secret. ``migrate FROM_URL
TO_URL`` takes its two stores as arguments and needs no secret either.

Only ``demo``, ``users create`` and the target of ``migrate`` may create a
database, a table or a session directory: every other command refuses a
SQLite file or a directory that does not exist, or an SQL database without
the sessions table (exit 2, nothing created), so a typo in a URL is not
reported as a success.

A result is one line on stdout (``swept 12 expired sessions``); messages go
to stderr, prefixed ``asyncsess:``. A progress bar is drawn on stderr during
long sweeps, wipes and migrations when stderr is a terminal. Exit codes:

===  ========================================================================
0    done
1    failed: the store or the operation did not succeed (the message says why)
2    usage: bad arguments, no store URL, a setting to fix
3    refused: ``wipe`` was not confirmed; nothing was deleted
130  interrupted (Ctrl-C)
===  ========================================================================
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import anyio

from . import __version__
from ._cli_migrate import add_migrate, migrate_command
from ._progress import tracked
from .exceptions import AsyncsessError, ConfigurationError
from .manager import SessionManager

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class _Refused(Exception):
    """The operator did not confirm; exit 3."""


class _Usage(Exception):
    """A usage error found after parsing; exit 2."""


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


_SQL = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})


def _creates(args: argparse.Namespace) -> bool:
    """Commands that may create a database, its tables or a session directory."""
    return bool(args.command == "demo" or (args.command == "users" and args.action == "create"))


def _is_sql(url: str) -> bool:
    return urlsplit(url).scheme.lower().split("+", 1)[0] in _SQL


def _must_exist(url: str) -> None:
    """Refuse a SQLite file or a session directory that is not there (a typo'd URL)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme.split("+", 1)[0] == "sqlite":
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            where: Path | None = Path(database)
        else:
            where = None
        what = "SQLite database"
    elif scheme == "file":
        where, what = Path(url2pathname(unquote(parts.path))), "session directory"
    else:
        return
    if where is not None and not where.exists():
        raise _Usage(
            f"no {what} at {where}: check the URL; nothing was created "
            "(only demo and users create make a new one)"
        )


def _manager(args: argparse.Namespace) -> SessionManager:
    options: dict[str, Any] = {"store": args.url}
    if not _creates(args):
        _must_exist(args.url)
        if _is_sql(args.url):
            options["store_options"] = {"create_table": False}  # a missing table: exit 2
    if args.secret:
        options["secret"] = [s.strip() for s in args.secret.split(",") if s.strip()]
    elif _needs_no_secret(args) and not os.environ.get("ASYNCSESS_SECRET"):
        options["privacy_mode"] = False  # these open no session: no secret needed
    try:
        return SessionManager.from_env(**options)
    except ConfigurationError as exc:
        if args.command == "users":  # deleting a user ends its sessions: found by keyed hash
            raise _Usage(
                "users delete needs the secret the sessions were sealed with, to find and end "
                "the user's sessions: pass --secret or set ASYNCSESS_SECRET; nothing was deleted"
            ) from exc
        raise


def _needs_no_secret(args: argparse.Namespace) -> bool:
    """Commands that open no session and look up no user's sessions."""
    if args.command == "users":
        return bool(args.action == "create")
    return args.command in ("sweep", "wipe", "stats")


async def _demo(mgr: SessionManager, args: argparse.Namespace) -> None:
    token = await mgr.create("demo-user", {"role": "demo"})
    print(f"created   a session for demo-user (token {token[:6]}…, stored only as a hash)")
    session = await mgr.validate(token)
    assert session is not None
    print(f"validate  -> user {session.user_id}, data {dict(session.data)}")
    new = await mgr.rotate(token)
    print(f"rotate    -> old token valid: {await mgr.validate(token) is not None}")
    print(f"revoke    -> {await mgr.revoke(new)}")


async def _stats(mgr: SessionManager, args: argparse.Namespace) -> None:
    live, expired = await mgr.count()
    print(f"live {live}")
    print(f"expired {expired}")


async def _sweep(mgr: SessionManager, args: argparse.Namespace) -> None:
    _, expired = await mgr.count()
    swept = await tracked("sweeping", expired, lambda bar: mgr.sweep(progress=bar))
    print(f"swept {swept} expired sessions")


async def _wipe(mgr: SessionManager, args: argparse.Namespace) -> None:
    total = sum(await mgr.count())
    wiped = await tracked("wiping", total, lambda bar: mgr.wipe(progress=bar))
    print(f"wiped {wiped} sessions")


async def _revoke_user(mgr: SessionManager, args: argparse.Namespace) -> None:
    print(f"revoked {await mgr.revoke_all(args.user_id)} sessions")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _Usage("no password: pass --password-stdin or run in a terminal")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise _Usage("the passwords differ")
    return password


async def _users(mgr: SessionManager, args: argparse.Namespace) -> None:
    from .accounts import Accounts

    options: dict[str, Any] = (
        {"create_table": False} if args.action != "create" and _is_sql(args.url) else {}
    )
    async with Accounts(args.url, **options) as accounts:
        if args.action == "create":
            created = await accounts.create_user(args.username, _password(args))
            print(f"created user {created.username} {created.id}")
            return
        user = await accounts.get_user(args.username)
        if user is None or not await accounts.delete_user(args.username):
            raise AsyncsessError(f"no user named {args.username!r}")
        revoked = await mgr.revoke_all(user.id)
        print(f"deleted user {user.username}; revoked {revoked} sessions")


def _confirm_wipe(args: argparse.Namespace) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise _Refused(
            "wipe refused: no terminal to confirm on; nothing was deleted "
            "(pass --yes to wipe without asking)"
        )
    sys.stderr.write(f"Delete every session in {_redact(args.url)}? Type 'yes' to confirm: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() != "yes":
        raise _Refused("wipe not confirmed; nothing was deleted")


Command = Callable[[SessionManager, argparse.Namespace], Awaitable[None]]


_COMMANDS: list[tuple[str, Command, str, str]] = [
    (
        "demo",
        _demo,
        "create, validate, rotate and revoke one session",
        "The store defaults to memory://; the session is revoked at the end.",
    ),
    ("stats", _stats, "count the live and the expired sessions", "Prints 'live N', 'expired N'."),
    ("sweep", _sweep, "delete the expired sessions", "Prints 'swept N expired sessions'."),
    (
        "wipe",
        _wipe,
        "delete every session in the store",
        "User accounts stay (delete them with 'users delete'). Asks for confirmation on a "
        "terminal; without one it refuses (exit 3) and deletes nothing unless --yes is given. "
        "Prints 'wiped N sessions'.",
    ),
    (
        "revoke-user",
        _revoke_user,
        "end every session of one user",
        "Prints 'revoked N sessions'. Needs the secret the sessions were sealed with.",
    ),
    (
        "users",
        _users,
        "create or delete a user account",
        "Accounts live in the same database as the sessions (memory, SQL or MongoDB).",
    ),
]
_EPILOG = """\
examples:
  asyncsess --url file:///var/lib/app/sessions sweep
  ASYNCSESS_URL=sqlite+aiosqlite:///app.db asyncsess stats
  asyncsess --url redis://localhost/0 revoke-user 8f3c2a
  asyncsess --url file:///var/lib/app/sessions wipe --yes
  asyncsess migrate sqlite+aiosqlite:///app.db postgresql+asyncpg://app@db/app

exit codes: 0 done, 1 failed, 2 usage, 3 refused (wipe not confirmed; nothing deleted)
"""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help="the store URL (default: $ASYNCSESS_URL)"
    )
    common.add_argument(
        "--secret",
        default=argparse.SUPPRESS,
        help="secret(s), newest first, comma-separated (default: $ASYNCSESS_SECRET, "
        "which is safer: a command line is visible to other users)",
    )
    parser = argparse.ArgumentParser(
        prog="asyncsess",
        parents=[common],
        description="Chores on an asyncsess session store: sweep expired sessions, wipe "
        "everything, count, end a user's sessions, manage user accounts, copy every session "
        "to another store.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"asyncsess {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, run, text, more in _COMMANDS:
        commands[name] = sub.add_parser(
            name, parents=[common], help=text, description=f"{text}. {more}"
        )
        commands[name].set_defaults(run=run)
    add_migrate(sub)
    commands["wipe"].add_argument("--yes", action="store_true", help="delete without asking")
    commands["revoke-user"].add_argument(
        "user_id", metavar="USER_ID", help="the user id the sessions belong to"
    )
    actions = commands["users"].add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        parents=[common],
        help="create a user",
        description="Create a user; prints 'created user NAME ID'. The password is asked "
        "twice on a terminal, or read from stdin with --password-stdin.",
    )
    create.add_argument("username", metavar="USERNAME", help="the new user's name")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    delete = actions.add_parser(
        "delete",
        parents=[common],
        help="delete a user and end their sessions",
        description="Delete a user and end their sessions; prints "
        "'deleted user NAME; revoked N sessions'.",
    )
    delete.add_argument("username", metavar="USERNAME", help="the user to delete")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    args.url = getattr(args, "url", None) or os.environ.get("ASYNCSESS_URL")
    args.secret = getattr(args, "secret", None)
    if args.command == "demo":
        args.url = args.url or "memory://"
        if not (args.secret or os.environ.get("ASYNCSESS_SECRET")):
            args.secret = secrets.token_urlsafe(32)

    async def go(mgr: SessionManager) -> None:
        run: Command = args.run
        async with mgr:
            await run(mgr, args)

    try:
        if args.command == "migrate":
            _must_exist(args.source)
            options = {"create_table": False} if _is_sql(args.source) else {}
            anyio.run(migrate_command, args, options)
            return EXIT_OK
        if not args.url:
            raise _Usage("no store: pass --url URL or set ASYNCSESS_URL")
        if args.command == "wipe":
            _confirm_wipe(args)
        anyio.run(go, _manager(args))
    except _Refused as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except (_Usage, ConfigurationError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except AsyncsessError as exc:
        return _fail(f"error: {exc}", EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - a store's raw error: report it, no traceback
        return _fail(f"error: {type(exc).__name__}: {exc}", EXIT_ERROR)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"asyncsess: {message}", file=sys.stderr)
    return code
