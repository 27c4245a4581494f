"""The SQL schema: the sessions table and the users table, built with SQLAlchemy Core.

Each is defined on a :class:`~sqlalchemy.MetaData` of its own so that an
application adds what it uses to its Alembic migrations (``target_metadata =
[app_metadata, asyncsess.stores.sql.metadata]``, plus
``asyncsess.accounts.backends.sql.metadata`` with accounts); :func:`sessions_table`
and :func:`users_table` build them under other names. The known-answer test
pins the columns.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ...accounts.user import MAX_USERNAME

__all__ = [
    "DEFAULT_TABLE",
    "DEFAULT_USERS_TABLE",
    "metadata",
    "sessions_table",
    "users_metadata",
    "users_table",
]

DEFAULT_TABLE: Final = "asyncsess_sessions"
DEFAULT_USERS_TABLE: Final = "asyncsess_users"
_MY: Final = ("mysql", "mariadb")


def sessions_table(metadata: sa.MetaData, name: str = DEFAULT_TABLE) -> sa.Table:
    """Define the sessions table called ``name`` on ``metadata`` and return it.

    ``user_ref`` is a 64-character keyed hash in privacy mode (the default); with
    privacy mode off it is the plaintext user id, which must fit in 255 characters
    (compared byte-wise on MySQL/MariaDB, which pad trailing spaces); ``""`` for a
    session without a user.
    """
    text_type = sa.String(255).with_variant(mysql.VARCHAR(255, collation="utf8mb4_bin"), *_MY)
    key_type = sa.String(64).with_variant(mysql.CHAR(64, collation="ascii_bin"), *_MY)
    return sa.Table(
        name,
        metadata,
        sa.Column("key", key_type, primary_key=True),  # SHA-256 of the token, hex
        sa.Column("user_ref", text_type, nullable=False),
        sa.Column(
            "payload",
            sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), *_MY),  # BLOB stops at 64 KiB
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),  # seconds since the epoch
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("absolute_at", sa.Double, nullable=False),
        sa.Index(f"ix_{name}_user_ref", "user_ref"),
        sa.Index(f"ix_{name}_expires_at", "expires_at"),
    )


def users_table(metadata: sa.MetaData, name: str = DEFAULT_USERS_TABLE) -> sa.Table:
    """Define the users table called ``name`` on ``metadata`` and return it."""
    # Binary collation on MySQL/MariaDB: usernames are compared exactly as normalised.
    username = sa.String(MAX_USERNAME).with_variant(
        mysql.VARCHAR(MAX_USERNAME, collation="utf8mb4_bin"), *_MY
    )
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("username", username, nullable=False),
        sa.Column("password_hash", sa.String(512), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),  # seconds since the epoch
        sa.UniqueConstraint("username", name=f"uq_{name}_username"),
    )


#: The schema of the default sessions table, for the application's own migrations.
metadata = sa.MetaData()
sessions_table(metadata)
#: The schema of the default users table (accounts), for the application's own migrations.
users_metadata = sa.MetaData()
users_table(users_metadata)
