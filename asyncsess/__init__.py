"""asyncsess: async-first sessions, sealed at rest, on memory, files, Redis, SQL and MongoDB."""

from .accounts import Accounts as Accounts
from .accounts import PasswordHasher as PasswordHasher
from .accounts import User as User
from .accounts.throttle import LoginLimits as LoginLimits
from .exceptions import AccountError as AccountError
from .exceptions import AsyncsessError as AsyncsessError
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import InvalidPassword as InvalidPassword
from .exceptions import InvalidUsername as InvalidUsername
from .exceptions import LoginThrottled as LoginThrottled
from .exceptions import MigrationIncomplete as MigrationIncomplete
from .exceptions import MissingDependency as MissingDependency
from .exceptions import SessionConflict as SessionConflict
from .exceptions import StoreError as StoreError
from .exceptions import StoreUnavailable as StoreUnavailable
from .exceptions import UnknownUser as UnknownUser
from .exceptions import UserExists as UserExists
from .manager import SessionManager as SessionManager
from .migration import MigrationResult as MigrationResult
from .migration import migrate as migrate
from .observe import Event as Event
from .observe import Events as Events
from .observe import Subscription as Subscription
from .observe import Telemetry as Telemetry
from .ratelimit import Decision as Decision
from .ratelimit import RateLimiter as RateLimiter
from .session import Session as Session
from .session import SessionInfo as SessionInfo
from .session import Stats as Stats
from .stores._registry import open_store as open_store
from .stores.base import Record as Record
from .stores.base import RecordExists as RecordExists
from .stores.base import Renewal as Renewal
from .stores.base import Store as Store

__version__ = "0.1.0"

__all__ = [
    "AccountError",
    "Accounts",
    "AsyncsessError",
    "ConfigurationError",
    "Decision",
    "Event",
    "Events",
    "InvalidPassword",
    "InvalidUsername",
    "LoginLimits",
    "LoginThrottled",
    "MigrationIncomplete",
    "MigrationResult",
    "MissingDependency",
    "PasswordHasher",
    "RateLimiter",
    "Record",
    "RecordExists",
    "Renewal",
    "Session",
    "SessionConflict",
    "SessionInfo",
    "SessionManager",
    "Stats",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Subscription",
    "Telemetry",
    "UnknownUser",
    "User",
    "UserExists",
    "__version__",
    "migrate",
    "open_store",
]
