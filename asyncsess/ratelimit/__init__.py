"""Rate limiting: at most N hits per key in any window of one period, in memory or Redis.

See :mod:`asyncsess.ratelimit.core` for the algorithm and the key hashing,
:mod:`asyncsess.ratelimit.redis` for the Redis script (imported only for a
Redis store).
"""

from .core import Decision as Decision
from .core import Rate as Rate
from .core import RateLimiter as RateLimiter
from .core import parse_rate as parse_rate

__all__ = ["Decision", "Rate", "RateLimiter", "parse_rate"]
