"""The APIs of the two managers asyncsess replaces, async, over the public API.

- :func:`get_session_adapter` (memory, file, Redis, MongoDB, SQL sessions
  configured by the older keys), see :mod:`asyncsess.compat.adapter`;
- :class:`SessionManager` (users and sessions in one SQL database), see
  :mod:`asyncsess.compat.sqlalchemy_manager`;
- their configuration keys (``session_expiry_minutes``, ``encryption_key``,
  ``storage_dir``, ``redis_host``, ``connection_string``, ...), translated by
  :mod:`asyncsess.compat.legacy` for ``asyncsess.SessionManager.from_config``.

Importing this package imports no database driver.
"""

from .adapter import SessionAdapter as SessionAdapter
from .adapter import get_session_adapter as get_session_adapter
from .sqlalchemy_manager import SessionManager as SessionManager

__all__ = ["SessionAdapter", "SessionManager", "get_session_adapter"]
