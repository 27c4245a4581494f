"""MongoDB users on PyMongo's async API.

One document per user, ``{"_id": id, "username": str, "password_hash": str,
"created_at": float}``, in ``asyncsess_users`` with a unique index on
``username``, created by :meth:`MongoUsers.open` before the first write: a
duplicate (even from two concurrent ``create_user`` calls) is refused by the
server and becomes :class:`~asyncsess.UserExists`. The client plumbing is the
MongoDB store's (:mod:`asyncsess.stores.mongo.client`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final, Self, TypeVar

from pymongo import AsyncMongoClient

from ...exceptions import ConfigurationError, UserExists
from ...stores._timeout import check_timeout
from ...stores.mongo.client import DEFAULT_DATABASE, call, client_from_url
from ...stores.mongo.store import MongoStore
from ..user import UserRecord
from . import UserStore

__all__ = ["DEFAULT_COLLECTION", "MongoUsers"]

DEFAULT_COLLECTION: Final = "asyncsess_users"
T = TypeVar("T")


def _taken() -> UserExists:
    return UserExists("a user with this username exists already")


class MongoUsers(UserStore):
    """Users in one collection of an async MongoDB database (never closed if given)."""

    def __init__(
        self,
        database: Any,
        *,
        collection: str = DEFAULT_COLLECTION,
        timeout: float | timedelta = 5.0,
    ) -> None:
        self._timeout = check_timeout(timeout, "accounts")
        self._collection: Any = database[collection]
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    @classmethod
    def create(
        cls,
        target: object,
        *,
        collection: str = DEFAULT_COLLECTION,
        timeout: float | timedelta = 5.0,
        **client_options: Any,
    ) -> Self:
        """From a URL (own client; database from its path), a MongoStore or a database."""
        if isinstance(target, str):
            client = client_from_url(
                target, timeout=check_timeout(timeout, "accounts"), **client_options
            )
            users = cls(
                client.get_default_database(DEFAULT_DATABASE),
                collection=collection,
                timeout=timeout,
            )
            users._client = client
            return users
        if client_options:
            raise ConfigurationError("client options only apply when accounts are given a URL")
        database = target.database if isinstance(target, MongoStore) else target
        return cls(database, collection=collection, timeout=timeout)

    async def _call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        return await call(what, op, seconds=self._timeout, duplicate=_taken)

    async def open(self) -> None:
        """Create the unique index on ``username``."""
        await self._call(
            "index creation", lambda: self._collection.create_index("username", unique=True)
        )

    async def insert(self, record: UserRecord) -> None:
        """insert_one; the unique index refuses a taken username."""
        doc = {
            "_id": record.id,
            "username": record.username,
            "password_hash": record.password_hash,
            "created_at": record.created_at,
        }
        await self._call("insert", lambda: self._collection.insert_one(doc))

    async def _one(self, query: dict[str, str]) -> UserRecord | None:
        doc = await self._call("get", lambda: self._collection.find_one(query))
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
        query = {"_id": user_id, "password_hash": old}
        result = await self._call(
            "update", lambda: self._collection.update_one(query, {"$set": {"password_hash": new}})
        )
        return bool(result.matched_count)

    async def delete(self, user_id: str) -> bool:
        """delete_one by id."""
        result = await self._call("delete", lambda: self._collection.delete_one({"_id": user_id}))
        return bool(result.deleted_count)

    async def count(self) -> int:
        """count_documents."""
        return int(await self._call("count", lambda: self._collection.count_documents({})))

    async def wipe(self) -> int:
        """delete_many({}) (the index stays)."""
        result = await self._call("wipe", lambda: self._collection.delete_many({}))
        return int(result.deleted_count)

    async def aclose(self) -> None:
        """Close the client made from a URL."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
