"""MongoDB store on PyMongo's async API (``mongodb://`` and ``mongodb+srv://`` URLs).

One document per session, ``_id`` being the record key (the token's hash)::

    {"_id": key, "user_ref": str, "payload": BinData, "version": int,
     "created_at": float, "absolute_at": float,
     "expires_ts": float,       # Record.expires_at, exact
     "expires_at": ISODate}     # the same instant rounded up to the ms, for the TTL index

``user_ref`` is ``""`` for a session without a user; a rewrite sets every
field in one ``update_one``, so a record moving to another user reference
moves in the same step. A TTL index (``expireAfterSeconds=0``) on
``expires_at`` lets the server drop expired sessions by itself; the manager
still checks expiry on every read, and :meth:`MongoStore.sweep` deletes in
bounded batches. Every call runs under ``pymongo.timeout(timeout)``, and
driver errors become :class:`~asyncsess.StoreUnavailable` (connection, server
selection, timeouts) or :class:`~asyncsess.StoreError`, the cause chained.

An app-owned database or collection of PyMongo's async API can be passed in
instead of a URL; it is never closed. (Motor, deprecated by MongoDB in favour
of that API, is not supported.)
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Self, TypeVar

from pymongo import AsyncMongoClient

from ...exceptions import ConfigurationError
from .._timeout import check_timeout
from .._url import split_query
from ..base import Record, RecordExists, Renewal, Store
from .client import DEFAULT_DATABASE, call, client_from_url

__all__ = ["DEFAULT_COLLECTION", "MongoStore"]

DEFAULT_COLLECTION = "asyncsess_sessions"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the largest date both sides accept
T = TypeVar("T")


def _ttl_date(ts: float) -> datetime:
    """``ts`` as a UTC datetime rounded *up* to the millisecond (BSON's precision)."""
    try:
        return _EPOCH + timedelta(milliseconds=min(math.ceil(ts * 1000), _MAX_MS))
    except (OverflowError, ValueError):  # inf or nan
        return _EPOCH + timedelta(milliseconds=_MAX_MS)


def _document(record: Record) -> dict[str, Any]:
    return {
        "_id": record.key,
        "user_ref": record.user_ref,
        "payload": record.payload,
        "version": record.version,
        "created_at": record.created_at,
        "absolute_at": record.absolute_at,
        "expires_ts": record.expires_at,
        "expires_at": _ttl_date(record.expires_at),
    }


def _record(doc: dict[str, Any]) -> Record:
    return Record(
        key=doc["_id"],
        user_ref=doc["user_ref"],
        payload=bytes(doc["payload"]),
        version=int(doc["version"]),
        created_at=float(doc["created_at"]),
        expires_at=float(doc["expires_ts"]),
        absolute_at=float(doc["absolute_at"]),
    )


def _renewed_ts(renew: Renewal) -> dict[str, Any]:
    """Aggregation expression of the renewed expiry (never shortened, never past absolute)."""
    return {"$max": ["$expires_ts", {"$min": [renew.until, "$absolute_at"]}]}


def _as_date(expr: Any) -> dict[str, Any]:
    return {"$toDate": {"$min": [{"$ceil": {"$multiply": [expr, 1000]}}, _MAX_MS]}}


def _renew_all(renew: Renewal) -> list[dict[str, Any]]:
    """Update pipeline that renews records already filtered as due."""
    return [
        {"$set": {"expires_ts": _renewed_ts(renew)}},
        {"$set": {"expires_at": _as_date("$expires_ts")}},
    ]


def _exists() -> RecordExists:
    return RecordExists("MongoDB insert failed: a session with this key exists")


class MongoStore(Store):
    """Sessions in one MongoDB collection, expired by a TTL index and :meth:`sweep`.

    ``database`` is an app-owned PyMongo async database to create
    ``collection`` in, or ``collection`` is itself an app-owned collection
    object; either way the store never closes it. :meth:`from_url` builds and
    owns a client instead. ``timeout`` (seconds) bounds every call.
    """

    native_expiry: ClassVar[bool] = True

    def __init__(
        self,
        database: Any = None,
        *,
        collection: Any = DEFAULT_COLLECTION,
        timeout: float | timedelta = 5.0,
    ) -> None:
        #: Seconds every call may take.
        self.timeout = check_timeout(timeout, "MongoStore")
        if isinstance(collection, str):
            if database is None:
                raise ConfigurationError(
                    "MongoStore needs a database (or a collection object), "
                    "or use MongoStore.from_url('mongodb://host/dbname')"
                )
            collection = database[collection]
        elif not hasattr(collection, "find_one_and_update"):
            raise ConfigurationError(
                f"MongoStore collection must be a name or an async collection, not {collection!r}"
            )
        self._collection: Any = collection
        #: The collection of PyMongo's async API the sessions are in.
        self.collection: Any = collection
        #: The database the collection is in (accounts on the same database use it).
        self.database: Any = collection.database
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a store with its own client; the database is the URL's path (or "asyncsess").

        Options: ``collection``, ``timeout``, from the keywords or the URL query
        (``?collection=sessions&timeout=2``); any other keyword or query option
        goes to :class:`pymongo.AsyncMongoClient`.
        """
        url, ours = split_query(url, ("collection", "timeout"))
        collection = options.pop("collection", ours.get("collection", DEFAULT_COLLECTION))
        timeout = check_timeout(options.pop("timeout", ours.get("timeout", 5.0)), "MongoStore")
        if not isinstance(collection, str):
            raise ConfigurationError(
                "from_url takes a collection *name*; pass objects to MongoStore"
            )
        client = client_from_url(url, timeout=timeout, **options)
        store = cls(
            client.get_default_database(DEFAULT_DATABASE), collection=collection, timeout=timeout
        )
        store._client = client
        return store

    async def _run(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op()`` (driver calls) bounded by ``timeout``, mapping driver errors."""
        return await call(what, op, seconds=self.timeout, duplicate=_exists)

    async def open(self) -> None:
        """Create the TTL index on ``expires_at`` and the index on ``user_ref``."""

        async def create_indexes() -> None:
            await self._collection.create_index("expires_at", expireAfterSeconds=0)
            await self._collection.create_index("user_ref")

        await self._run("index creation", create_indexes)

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        """Return the record under ``key`` with one ``find_one``.

        A record due for renewal (rare: renewal is coalesced) is then renewed with
        one ``update_one`` that re-checks it is still due.
        """
        doc = await self._run("get", lambda: self._collection.find_one({"_id": key}))
        if doc is None:
            return None
        record = _record(doc)
        renewed = renew.apply(record) if renew is not None else None
        if renew is None or renewed is None:
            return record
        query = {"_id": key, "expires_ts": {"$gt": renew.now, "$lt": renew.threshold}}
        await self._run("renewal", lambda: self._collection.update_one(query, _renew_all(renew)))
        return renewed

    async def get_many(
        self, keys: Sequence[str], *, renew: Renewal | None = None
    ) -> list[Record | None]:
        """Return the records of ``keys`` in order: one ``$in`` query.

        Records due for renewal (rare: renewal is coalesced) are then renewed with
        one ``update_many``, which re-checks that each is still due.
        """
        if not keys:
            return []
        wanted = {"_id": {"$in": list(dict.fromkeys(keys))}}

        async def find() -> dict[str, Record]:
            return {doc["_id"]: _record(doc) async for doc in self._collection.find(wanted)}

        found = await self._run("get_many", find)
        if renew is not None:
            due = {k: r for k, r in ((k, renew.apply(v)) for k, v in found.items()) if r}
            if due:
                query = {
                    "_id": {"$in": list(due)},
                    "expires_ts": {"$gt": renew.now, "$lt": renew.threshold},
                }
                await self._run(
                    "renewal", lambda: self._collection.update_many(query, _renew_all(renew))
                )
                found.update(due)
        return [found.get(key) for key in keys]

    async def insert(self, record: Record) -> None:
        """Store a new record; an existing key raises :class:`RecordExists`."""
        await self._run("insert", lambda: self._collection.insert_one(_document(record)))

    async def replace(self, record: Record, *, expected_version: int) -> bool:
        """Overwrite ``record.key`` only if it is at ``expected_version``."""
        fields = _document(record)
        del fields["_id"]
        query = {"_id": record.key, "version": expected_version}
        result = await self._run(
            "replace", lambda: self._collection.update_one(query, {"$set": fields})
        )
        return bool(result.matched_count)

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Delete one record (if at ``expected_version``, when given); ``True`` if deleted."""
        query: dict[str, Any] = {"_id": key}
        if expected_version is not None:
            query["version"] = expected_version
        result = await self._run("delete", lambda: self._collection.delete_one(query))
        return bool(result.deleted_count)

    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        """Delete every record of ``user_ref`` but ``keep``; return the count."""
        if not user_ref:  # names no user: sessions without one are in no index
            return 0
        query: dict[str, Any] = {"user_ref": user_ref}
        if keep is not None:
            query["_id"] = {"$ne": keep}
        result = await self._run("delete_user", lambda: self._collection.delete_many(query))
        return int(result.deleted_count)

    async def list_user(self, user_ref: str) -> list[Record]:
        """Return every record of ``user_ref``, expired ones included."""
        if not user_ref:
            return []

        async def find() -> list[Record]:
            return [_record(doc) async for doc in self._collection.find({"user_ref": user_ref})]

        return await self._run("list_user", find)

    async def sweep(self, now: float, *, limit: int) -> int:
        """Delete at most ``limit`` records with ``expires_at <= now``; return the count."""
        if limit <= 0:  # a MongoDB limit of 0 means "no limit"
            return 0
        # The date bound uses the TTL index; the float bound is the exact test.
        expired = {"expires_at": {"$lte": _ttl_date(now)}, "expires_ts": {"$lte": now}}

        async def find_and_delete() -> int:
            cursor = self._collection.find(expired, {"_id": True}).limit(limit)
            ids = [doc["_id"] async for doc in cursor]
            if not ids:
                return 0
            result = await self._collection.delete_many({**expired, "_id": {"$in": ids}})
            return int(result.deleted_count)

        return await self._run("sweep", find_and_delete)

    async def count(self, now: float) -> tuple[int, int]:
        """Return how many records are live (``expires_at > now``) and how many expired."""

        async def count_both() -> tuple[int, int]:
            live = await self._collection.count_documents({"expires_ts": {"$gt": now}})
            expired = await self._collection.count_documents({"expires_ts": {"$lte": now}})
            return int(live), int(expired)

        return await self._run("count", count_both)

    async def _page(self, query: dict[str, Any], batch: int) -> list[Record]:
        cursor = self._collection.find(query).sort("_id", 1).limit(batch)
        return [_record(doc) async for doc in cursor]

    async def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        """Yield every record in ``_id`` order: one ``find`` per ``batch`` (keyset pages)."""
        query: dict[str, Any] = {}
        while True:
            records = await self._run("scan", partial(self._page, query, batch))
            if records:
                yield records
            if len(records) < batch:
                return
            query = {"_id": {"$gt": records[-1].key}}

    async def wipe(self) -> int:
        """Delete every session in the collection (its indexes stay); return the count."""
        result = await self._run("wipe", lambda: self._collection.delete_many({}))
        return int(result.deleted_count)

    async def aclose(self) -> None:
        """Close the client :meth:`from_url` created; an app-owned one stays open."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
