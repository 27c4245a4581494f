"""MongoDB on PyMongo's async API: the session store and the client plumbing the
accounts share (:mod:`.client`)."""

from .store import MongoStore

__all__ = ["MongoStore"]
