"""SQL on SQLAlchemy's asyncio extension: the session store, the schema (sessions and
users, :mod:`.schema`), the engine plumbing the accounts share (:mod:`.engine`), and
PostgreSQL's notify trigger for the near cache (:mod:`.notify`)."""

from .notify import drop_notify_trigger_sql, notify_trigger_sql
from .schema import DEFAULT_TABLE, metadata, sessions_table
from .store import SQLStore

__all__ = [
    "DEFAULT_TABLE",
    "SQLStore",
    "drop_notify_trigger_sql",
    "metadata",
    "notify_trigger_sql",
    "sessions_table",
]
