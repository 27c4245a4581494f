"""MongoDB users on PyMongo's async API.

One document per user, ``{"_id": id, "username": str, "password_hash": str,
"created_at": float}``, in ``asyncsess_users`` with a unique index on
``username``, created by :meth:`MongoUsers.open` before the first write: a
duplicate (even from two concurrent ``create_user`` calls) is refused by the
server and becomes :class:`~asyncsess.UserExists`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Self

import pymongo
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from ...exceptions import ConfigurationError, UserExists
from ...stores.mongo.store import MongoStore, driver_error
from ..user import UserRecord
from . import UserStore

__all__ = ["DEFAULT_COLLECTION", "MongoUsers"]

DEFAULT_COLLECTION: Final = "asyncsess_users"
DEFAULT_DATABASE: Final = "asyncsess"


class MongoUsers(UserStore):
    """Users in one collection of an async MongoDB database (never closed if given)."""

    def __init__(
        self, database: Any, *, collection: str = DEFAULT_COLLECTION, timeout: float = 5.0
    ) -> None:
        if type(timeout) not in (int, float) or not timeout > 0:
            raise ConfigurationError(f"timeout must be positive seconds, not {timeout!r}")
        self._collection: Any = database[collection]
        self._timeout = float(timeout)
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    @classmethod
    def create(
        cls,
        target: object,
        *,
        collection: str = DEFAULT_COLLECTION,
        timeout: float = 5.0,
        **client_options: Any,
    ) -> Self:
        """From a URL (own client; database from its path), a MongoStore or a database."""
        if isinstance(target, str):
            ms = max(1, int(timeout * 1000))
            client_options.setdefault("serverSelectionTimeoutMS", ms)
            client_options.setdefault("timeoutMS", ms)
            try:
                client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                    target, **client_options
                )
            except PyMongoError as exc:
                raise ConfigurationError(f"invalid MongoDB URL or client option: {exc}") from exc
            users = cls(
                client.get_default_database(DEFAULT_DATABASE),
                collection=collection,
                timeout=timeout,
            )
            users._client = client
            return users
        if client_options:
            raise ConfigurationError("client options only apply when accounts are given a URL")
        database = target
        if isinstance(target, MongoStore):
            database = getattr(target, "database", None)
            if database is None:
                raise ConfigurationError(
                    "this MongoStore does not expose its database; pass the database itself: "
                    "Accounts(client['dbname'])"
                )
        return cls(database, collection=collection, timeout=timeout)

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            with pymongo.timeout(self._timeout):
                yield
        except DuplicateKeyError as exc:
            raise UserExists("a user with this username exists already") from exc
        except PyMongoError as exc:
            raise driver_error(exc, what, self._timeout) from exc

    async def open(self) -> None:
        """Create the unique index on ``username``."""
        with self._call("index creation"):
            await self._collection.create_index("username", unique=True)

    async def insert(self, record: UserRecord) -> None:
        """insert_one; the unique index refuses a taken username."""
        doc = {
            "_id": record.id,
            "username": record.username,
            "password_hash": record.password_hash,
            "created_at": record.created_at,
        }
        with self._call("insert"):
            await self._collection.insert_one(doc)

    async def _one(self, query: dict[str, str]) -> UserRecord | None:
        with self._call("get"):
            doc = await self._collection.find_one(query)
        if doc is None:
            return None
        return UserRecord(doc["_id"], doc["username"], doc["password_hash"], doc["created_at"])

    async def get(self, username: str) -> UserRecord | None:
        """find_one by username."""
        return await self._one({"username": username})

    async def get_by_id(self, user_id: str) -> UserRecord | None:
        """find_one by id."""
        return await self._one({"_id": user_id})

    async def set_hash(self, user_id: str, old: str, new: str) -> bool:
        """update_one filtered on the old hash."""
        with self._call("update"):
            result = await self._collection.update_one(
                {"_id": user_id, "password_hash": old}, {"$set": {"password_hash": new}}
            )
        return bool(result.matched_count)

    async def delete(self, user_id: str) -> bool:
        """delete_one by id."""
        with self._call("delete"):
            result = await self._collection.delete_one({"_id": user_id})
        return bool(result.deleted_count)

    async def count(self) -> int:
        """count_documents."""
        with self._call("count"):
            return int(await self._collection.count_documents({}))

    async def wipe(self) -> int:
        """delete_many({}) (the index stays)."""
        with self._call("wipe"):
            result = await self._collection.delete_many({})
        return int(result.deleted_count)

    async def aclose(self) -> None:
        """Close the client made from a URL."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
