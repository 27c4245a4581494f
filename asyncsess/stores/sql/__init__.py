"""SQL on SQLAlchemy's asyncio extension: the session store, the schema (sessions and
users, :mod:`.schema`) and the engine plumbing the accounts share (:mod:`.engine`)."""

from .schema import DEFAULT_TABLE, metadata, sessions_table
from .store import SQLStore

__all__ = ["DEFAULT_TABLE", "SQLStore", "metadata", "sessions_table"]
