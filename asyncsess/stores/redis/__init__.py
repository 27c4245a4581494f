"""Redis and Redis Cluster: the session store, its scripts, and the client plumbing the
rate limiter shares (:mod:`.client`)."""

from .store import RedisStore

__all__ = ["RedisStore"]
