"""``request.session``: the mutable mapping a request reads and writes its session through.

The mapping starts as a private copy of the session's data (plain dicts and
lists, so nested values can be changed in place) and remembers what each
key held. At the end of the request, :meth:`RequestSession.changes` tells
which keys were set or removed by comparing their JSON forms, so
``session["cart"].append(item)`` counts as a change without any wrapper.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from ..session import Session, thaw

__all__ = ["RequestSession", "fingerprint", "thaw"]


def fingerprint(value: Any) -> str:
    """A canonical JSON form of ``value`` (``TypeError`` if it is not JSON data)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_refuse)


def _refuse(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"session values must be JSON data, not {type(value).__name__}")


class RequestSession(MutableMapping[str, Any]):
    """A request's session data as a mutable mapping, written back once at the end if changed.

    ``record`` is the validated :class:`~asyncsess.Session` the data came
    from (``None`` when the request has no live session yet: the first write
    creates an anonymous one). ``user_id`` is ``None`` for an anonymous
    session. Values must be JSON data (nested dicts and lists are fine).
    """

    __slots__ = ("_data", "_original", "loaded", "record")

    def __init__(self) -> None:
        self.record: Session | None = None
        self._data: dict[str, Any] = {}
        self._original: dict[str, str] = {}
        #: ``False`` until the session is loaded; using the mapping before raises RuntimeError.
        self.loaded = False

    def reset(self, record: Session | None, data: Mapping[str, Any] | None = None) -> None:
        """Point at ``record`` with ``data`` (default: the record's) as the unchanged state."""
        self.record = record
        self.loaded = True
        source = data if data is not None else ({} if record is None else record.data)
        self._data = thaw(source)
        self._original = {k: fingerprint(v) for k, v in self._data.items()}

    @property
    def user_id(self) -> str | None:
        """The session's user, or ``None`` for an anonymous (or not yet created) session."""
        return None if self.record is None else self.record.user_id

    @property
    def id(self) -> str | None:
        """The session's id (never its token), or ``None`` before it exists."""
        return None if self.record is None else self.record.id

    @property
    def _live(self) -> dict[str, Any]:
        if not self.loaded:
            raise RuntimeError(
                "asyncsess: the session is not loaded yet: await load_session(request) "
                "(Starlette; FastAPI: a SessionData parameter) before using request.session"
            )
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._live[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        self._live[key] = value

    def __delitem__(self, key: str) -> None:
        del self._live[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._live)

    def __len__(self) -> int:
        return len(self._live)

    def __repr__(self) -> str:
        return f"<RequestSession user={self.user_id!r} keys={sorted(self._data)}>"

    def data(self) -> dict[str, Any]:
        """A deep copy of the current data."""
        copy: dict[str, Any] = thaw(self._live)
        return copy

    def changes(self) -> tuple[dict[str, Any], set[str]]:
        """The keys set to a new value (with it) and the keys removed, since the load."""
        changed = {
            key: value
            for key, value in self._data.items()
            if self._original.get(key) != fingerprint(value)
        }
        return changed, set(self._original) - set(self._data)

    def changed_by_others(self, fresh: Mapping[str, Any]) -> set[str]:
        """The keys in which ``fresh`` differs from the data this request loaded."""
        keys = set(fresh) ^ set(self._original)
        both = set(fresh) & set(self._original)
        return keys | {k for k in both if fingerprint(fresh[k]) != self._original[k]}
