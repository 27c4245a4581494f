"""Observing a manager: OpenTelemetry spans and metrics, and lifecycle events for audit logs.

- :mod:`asyncsess.observe.telemetry`: :class:`Telemetry` (``SessionManager(telemetry=...)``),
  spans ``asyncsess.<operation>``, the counter, histogram and sessions gauge;
  ``opentelemetry-api`` (the ``otel`` extra) is imported only when a manager is built.
- :mod:`asyncsess.observe.events`: :class:`Event` and :class:`Events`
  (``mgr.events.subscribe(callback)``, ``mgr.events.stream()``), delivered off
  the request path through bounded queues.
- :mod:`asyncsess.observe.observer`: the one object the manager reports to.
"""

from .events import EVENT_KINDS as EVENT_KINDS
from .events import Event as Event
from .events import EventCallback as EventCallback
from .events import EventKind as EventKind
from .events import Events as Events
from .events import EventStream as EventStream
from .events import Subscription as Subscription
from .telemetry import Outcome as Outcome
from .telemetry import Telemetry as Telemetry

__all__ = [
    "EVENT_KINDS",
    "Event",
    "EventCallback",
    "EventKind",
    "EventStream",
    "Events",
    "Outcome",
    "Subscription",
    "Telemetry",
]
