"""OpenTelemetry: spans and metrics for a manager's operations (the ``otel`` extra).

asyncsess uses only ``opentelemetry-api``, imported when a manager is built
(never when ``asyncsess`` is), and records through the providers the app
configured with the SDK. Until an SDK provider is configured, nothing is
recorded and nothing is called: the API's own providers (its proxy and no-op
ones) are recognised and skipped, so a validate costs what it costs without
OpenTelemetry. A provider configured later is picked up (see
:class:`Telemetry`).

Each operation (``create``, ``validate``, ``update``, ``rotate``, ``revoke``,
``revoke_session``, ``revoke_all``, ``login``, ``sweep``) gets:

- a span ``asyncsess.<operation>`` (kind internal) with the attributes
  ``asyncsess.store`` and ``asyncsess.outcome`` (:data:`Outcome`), its status
  an error only for ``store_error``/``error`` (with ``error.type``, the
  exception's class; never its message);
- a count on the counter ``asyncsess.operations`` and a duration (seconds)
  on the histogram ``asyncsess.operation.duration``, both with the
  attributes ``asyncsess.operation``, ``asyncsess.store``, ``asyncsess.outcome``.

The observable gauge ``asyncsess.sessions`` reports the live and expired
sessions (attribute ``asyncsess.state``) of the manager's last
:meth:`~asyncsess.SessionManager.stats`, which it calls every
``stats_interval`` while it runs. No attribute ever holds a token, a session
or user id, a username or a client address.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import anyio

from ..exceptions import (
    ConfigurationError,
    LoginThrottled,
    MissingDependency,
    SessionConflict,
    StoreError,
)
from ..stores.base import Store

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Tracer, TracerProvider

__all__ = [
    "DURATION_BUCKETS",
    "Outcome",
    "Telemetry",
    "Tracing",
    "failure",
    "resolve",
    "store_kind",
]

T = TypeVar("T")

Outcome = Literal[
    "ok",
    "valid",
    "cache_hit",
    "unknown",
    "expired",
    "malformed",
    "invalid",
    "failed",
    "throttled",
    "conflict",
    "store_error",
    "error",
    "cancelled",
]
#: The duration histogram's bucket boundaries (seconds), given as advice to the SDK.
DURATION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_INSTALL = 'pip install "asyncsess[otel]"'


@dataclass(frozen=True, slots=True)
class Telemetry:
    """How a :class:`~asyncsess.SessionManager` reports to OpenTelemetry (``telemetry=``).

    ``SessionManager(telemetry=None)``, the default, reports through the
    global providers when ``opentelemetry-api`` is installed (and does
    nothing when it is not); ``telemetry=True`` is the same but requires it;
    ``telemetry=False`` reports nothing; ``telemetry=Telemetry(...)`` gives
    providers of its own (e.g. for tests) and settings.

    ``tracer_provider`` and ``meter_provider`` (``None``: the global one)
    are used once they are SDK providers: a global one configured after the
    manager was built is picked up within about a second while the manager
    runs (``async with``), and at its next create, update, rotate, revoke,
    revoke_all, login or sweep in any case. ``stats_interval`` (seconds) is
    how often the running manager calls ``stats()`` for the sessions gauge
    (a count of the store's sessions: on SQL a ``COUNT`` over the table);
    ``None``: never, the gauge then reports the app's own ``stats()`` calls.
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    stats_interval: float | None = 30.0

    def __post_init__(self) -> None:
        interval: object = self.stats_interval
        if interval is not None and (not isinstance(interval, int | float) or not interval > 0):
            raise ConfigurationError(
                f"stats_interval must be positive seconds or None, not {interval!r}"
            )


def _api(module: str) -> Any:
    return importlib.import_module(f"opentelemetry.{module}")


def _is_sdk(provider: object) -> bool:
    """Whether ``provider`` records: the API's own providers (proxy, no-op) do not."""
    return type(provider).__module__.split(".")[:2] not in (
        ["opentelemetry", "trace"],
        ["opentelemetry", "metrics"],
    )


def store_kind(store: Store, url: str | None) -> str:
    """The ``asyncsess.store`` attribute: the URL's scheme family, or the store's class."""
    if url is not None and "://" in url:
        scheme = urlsplit(url).scheme.lower().split("+", 1)[0]
        return {"rediss": "redis", "mongodb": "mongodb"}.get(scheme, scheme)
    name = type(store).__name__
    return (name[: -len("Store")] if name.endswith("Store") and name != "Store" else name).lower()


def failure(exc: BaseException) -> Outcome:
    """The outcome of an operation that raised ``exc``."""
    if isinstance(exc, StoreError):
        return "store_error"
    if isinstance(exc, SessionConflict):
        return "conflict"
    if isinstance(exc, LoginThrottled):
        return "throttled"
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return "error"


class _Meters:
    """The instruments of one meter provider, shared by every manager reporting to it."""

    def __init__(self, meter: Meter, metrics: Any) -> None:
        self._observation = metrics.Observation
        self.operations = meter.create_counter(
            "asyncsess.operations", unit="{operation}", description="Session operations"
        )
        self.duration = meter.create_histogram(
            "asyncsess.operation.duration",
            unit="s",
            description="Duration of session operations",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.sources: weakref.WeakSet[Tracing] = weakref.WeakSet()
        meter.create_observable_gauge(
            "asyncsess.sessions",
            callbacks=[self._observe],
            unit="{session}",
            description="Sessions in the store at the last stats(), live and expired",
        )

    def _observe(self, options: CallbackOptions) -> Iterator[Observation]:
        observation = self._observation
        for source in list(self.sources):
            if source.sessions is not None:
                live, expired = source.sessions
                store = source.store
                yield observation(live, {"asyncsess.store": store, "asyncsess.state": "live"})
                yield observation(expired, {"asyncsess.store": store, "asyncsess.state": "expired"})


_METERS: weakref.WeakKeyDictionary[Any, _Meters] = weakref.WeakKeyDictionary()


class Tracing:
    """One manager's link to OpenTelemetry: its tracer and instruments once they record."""

    __slots__ = (
        "__weakref__",
        "_metrics",
        "_trace",
        "config",
        "meters",
        "sessions",
        "store",
        "tracer",
    )

    def __init__(self, config: Telemetry, store: str, trace: Any, metrics: Any) -> None:
        self.config = config
        self.store = store
        self._trace, self._metrics = trace, metrics  # the API's modules, imported once
        self.tracer: Tracer | None = None
        self.meters: _Meters | None = None
        #: (live, expired) of the last ``stats()``, for the gauge.
        self.sessions: tuple[int, int] | None = None
        self.refresh()

    @property
    def live(self) -> bool:
        """Whether anything is recorded (a tracer or a meter provider is an SDK's)."""
        return self.tracer is not None or self.meters is not None

    @property
    def pending(self) -> bool:
        """Whether a provider could still become an SDK's (worth checking again)."""
        return self.tracer is None or self.meters is None

    def refresh(self) -> bool:
        """Pick up the providers that record now; return :attr:`live`."""
        if self.tracer is None:
            tracer_provider = self.config.tracer_provider or self._trace.get_tracer_provider()
            if _is_sdk(tracer_provider):
                self.tracer = tracer_provider.get_tracer("asyncsess", _version())
        if self.meters is None:
            meter_provider = self.config.meter_provider or self._metrics.get_meter_provider()
            if _is_sdk(meter_provider):
                meters = _METERS.get(meter_provider)
                if meters is None:
                    meter = meter_provider.get_meter("asyncsess", _version())
                    meters = _METERS[meter_provider] = _Meters(meter, self._metrics)
                meters.sources.add(self)
                self.meters = meters
        return self.live

    async def run(
        self, operation: str, call: Awaitable[T], outcome_of: Callable[[T], Outcome]
    ) -> T:
        """Await ``call`` in a span of ``operation`` and record it with its outcome."""
        tracer = self.tracer
        span_of = (
            tracer.start_as_current_span(
                f"asyncsess.{operation}",
                attributes={"asyncsess.store": self.store},
                record_exception=False,
                set_status_on_exception=False,
            )
            if tracer is not None
            else nullcontext()
        )
        outcome: Outcome = "error"
        start = perf_counter()
        with span_of as span:
            try:
                result = await call
                outcome = outcome_of(result)
                return result
            except BaseException as exc:
                outcome = failure(exc)
                if span is not None and outcome in ("store_error", "error"):
                    trace = self._trace
                    span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
                    span.set_attribute("error.type", f"{type(exc).__module__}.{type(exc).__name__}")
                raise
            finally:
                if span is not None:
                    span.set_attribute("asyncsess.outcome", outcome)
                if self.meters is not None:
                    attributes = {
                        "asyncsess.operation": operation,
                        "asyncsess.store": self.store,
                        "asyncsess.outcome": outcome,
                    }
                    self.meters.operations.add(1, attributes)
                    self.meters.duration.record(perf_counter() - start, attributes)


def _version() -> str:
    from .. import __version__

    return __version__


def resolve(telemetry: bool | Telemetry | None, store: str) -> Tracing | None:
    """The manager's :class:`Tracing` for its ``telemetry`` argument (see :class:`Telemetry`)."""
    if telemetry is False:
        return None
    if telemetry is not None and telemetry is not True and not isinstance(telemetry, Telemetry):
        raise ConfigurationError(
            f"telemetry must be True, False, None or a Telemetry, not {telemetry!r}"
        )
    try:
        trace, metrics = _api("trace"), _api("metrics")
    except ImportError as exc:
        if telemetry is None:
            return None
        raise MissingDependency(
            f"telemetry needs the opentelemetry-api package: {_INSTALL}"
        ) from exc
    config = telemetry if isinstance(telemetry, Telemetry) else Telemetry()
    return Tracing(config, store, trace, metrics)
