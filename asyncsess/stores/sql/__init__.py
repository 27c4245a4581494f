"""SQL on SQLAlchemy's asyncio extension: the session store, the schema (sessions and
users) and the engine plumbing the accounts share (:mod:`.engine`)."""

from .store import DEFAULT_TABLE, SQLStore, metadata, sessions_table

__all__ = ["DEFAULT_TABLE", "SQLStore", "metadata", "sessions_table"]
