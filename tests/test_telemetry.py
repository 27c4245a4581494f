"""OpenTelemetry on real stores, read back with the SDK's in-memory exporter and reader: a span
and metrics per operation with the store kind and the outcome, the sessions gauge, nothing
private in any attribute; without an SDK, validate calls nothing of OpenTelemetry (or of
asyncsess.observe); an SDK configured after the manager was built is picked up."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from asyncsess import (
    ConfigurationError,
    LoginThrottled,
    SessionConflict,
    SessionManager,
    StoreUnavailable,
    Telemetry,
    open_store,
)
from asyncsess.accounts import Accounts, LoginLimits, PasswordHasher
from asyncsess.ratelimit import RateLimiter
from asyncsess.tokens import new_token
from tests.backends import StoreSpec
from tests.conftest import IDLE, OTHER_SECRET, SECRET, FakeClock

pytestmark = pytest.mark.anyio

STORES = {"memory": "memory", "sqlite": "sqlite", "redis": "redis", "postgresql": "postgresql"}
DATA = {"cart": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "tags": ["gift"]}], "prefs": {}}
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, max_waiting=64)
PASSWORD = "correct horse battery staple"
CLIENT = "203.0.113.7"
ATTRIBUTES = {"asyncsess.store", "asyncsess.outcome", "asyncsess.operation", "asyncsess.state"}


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    telemetry: Telemetry

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def outcomes(self) -> Counter[tuple[str, str]]:
        return Counter(
            (span.name, str((span.attributes or {})["asyncsess.outcome"]))
            for span in self.finished()
        )

    def metrics(self) -> dict[str, list[Any]]:
        data: MetricsData | None = self.reader.get_metrics_data()
        assert data is not None
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "asyncsess"
                for metric in scope.metrics:
                    found[metric.name] = [metric.unit, *metric.data.data_points]
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield Otel(spans, reader, Telemetry(tracer_provider, meter_provider))
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture(params=list(STORES))
def spec(request: pytest.FixtureRequest) -> StoreSpec:
    found: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return found


@pytest.fixture
async def mgr(
    spec: StoreSpec, otel: Otel, clock: FakeClock
) -> AsyncIterator[tuple[SessionManager, Accounts]]:
    limits = LoginLimits(clock=clock)
    async with Accounts("memory://", hasher=FAST, limits=limits) as accounts:
        manager = SessionManager(
            spec.url,
            store_options=spec.options,
            secret=SECRET,
            clock=clock,
            idle_timeout=IDLE,
            accounts=accounts,
            login_limiter=RateLimiter("2/minute", clock=clock),
            telemetry=otel.telemetry,
        )
        try:
            yield manager, accounts
        finally:
            await manager.wipe()
            await manager.aclose()


async def test_a_span_and_metrics_per_operation_with_store_and_outcome(
    mgr: tuple[SessionManager, Accounts], otel: Otel, clock: FakeClock, spec: StoreSpec
) -> None:
    manager, accounts = mgr
    user = await accounts.create_user("Alice", PASSWORD)
    token = await manager.create(user.id, DATA)
    session = await manager.validate(token)
    assert session is not None and session.data["cart"][1]["tags"] == ("gift",)
    assert await manager.validate("not a token") is None
    assert await manager.validate(new_token()) is None
    assert await manager.update(token, {**DATA, "prefs": {"lang": "fr"}})
    with pytest.raises(SessionConflict):
        await manager.update(token, DATA, version=1)
    token = await manager.rotate(token) or ""
    assert await manager.rotate(new_token()) is None
    login = await manager.login("alice", PASSWORD, client=CLIENT)
    assert login is not None
    assert await manager.login("alice", "wrong", client=CLIENT) is None
    assert await manager.login("alice", "wrong") is None
    with pytest.raises(LoginThrottled):
        await manager.login("alice", PASSWORD, client=CLIENT)
    assert await manager.revoke(login)
    assert not await manager.revoke(login)
    assert await manager.revoke_all(user.id) == 1
    old = await manager.create(None, DATA)
    clock.advance(IDLE + 1)
    assert await manager.validate(old) is None
    swept = await manager.sweep()
    stats = await manager.stats()
    kind = spec.url.split(":", 1)[0].split("+", 1)[0]
    spans = otel.finished()
    assert {span.attributes["asyncsess.store"] for span in spans if span.attributes} == {kind}
    assert otel.outcomes() == Counter(
        {
            ("asyncsess.create", "ok"): 3,  # two by the manager, one by the login
            ("asyncsess.validate", "valid"): 1,
            ("asyncsess.validate", "malformed"): 1,
            ("asyncsess.validate", "unknown"): 1,
            ("asyncsess.validate", "expired"): 1,
            ("asyncsess.update", "ok"): 1,
            ("asyncsess.update", "conflict"): 1,
            ("asyncsess.rotate", "ok"): 1,
            ("asyncsess.rotate", "unknown"): 1,
            ("asyncsess.login", "ok"): 1,
            ("asyncsess.login", "failed"): 2,
            ("asyncsess.login", "throttled"): 1,
            ("asyncsess.revoke", "ok"): 1,
            ("asyncsess.revoke", "unknown"): 1,
            ("asyncsess.revoke_all", "ok"): 1,
            ("asyncsess.sweep", "ok"): 1,
        }
    )
    logins = [s for s in spans if s.name == "asyncsess.login" and s.attributes
              and s.attributes["asyncsess.outcome"] == "ok"]  # fmt: skip
    creates = [s for s in spans if s.name == "asyncsess.create"]
    assert any(c.parent is not None and c.parent.span_id == logins[0].context.span_id
               for c in creates)  # fmt: skip
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert all(s.kind is trace.SpanKind.INTERNAL for s in spans)

    metrics = otel.metrics()
    assert set(metrics) == {"asyncsess.operations", "asyncsess.operation.duration",
                            "asyncsess.sessions"}  # fmt: skip
    unit, *counts = metrics["asyncsess.operations"]
    assert unit == "{operation}"
    by_outcome = {
        (f"asyncsess.{p.attributes['asyncsess.operation']}", p.attributes["asyncsess.outcome"]):
        p.value for p in counts
    }  # fmt: skip
    assert by_outcome == dict(otel.outcomes())
    unit, *durations = metrics["asyncsess.operation.duration"]
    assert unit == "s"
    assert sum(p.count for p in durations) == sum(otel.outcomes().values())
    assert all(0 <= p.min <= p.max < 60 for p in durations)
    unit, *gauge = metrics["asyncsess.sessions"]
    assert unit == "{session}"
    assert {p.attributes["asyncsess.state"]: p.value for p in gauge} == {
        "live": stats.live,
        "expired": stats.expired,
    }
    assert stats.expired == (0 if swept else 1)

    private = {token, login, old, user.id, "alice", "Alice", CLIENT, session.id}
    points = [p for values in metrics.values() for p in values[1:]]
    for attributes in [s.attributes or {} for s in spans] + [p.attributes for p in points]:
        assert set(attributes) <= ATTRIBUTES | {"error.type"}
        assert not {str(v) for v in attributes.values()} & private
    assert not [s for s in spans if s.events or s.links]


async def test_a_record_that_does_not_open_is_invalid(sqlite_store_spec: StoreSpec) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = open_store(sqlite_store_spec.url)
    try:
        token = await SessionManager(store, secret=SECRET).create("alice", DATA)
        other = SessionManager(store, secret=OTHER_SECRET, telemetry=Telemetry(provider))
        assert await other.validate(token) is None
    finally:
        await store.aclose()
        provider.shutdown()
    [span] = exporter.get_finished_spans()
    assert span.attributes == {"asyncsess.store": "sql", "asyncsess.outcome": "invalid"}


async def test_a_store_failure_is_an_error_span_and_a_store_error_count(otel: Otel) -> None:
    mgr = SessionManager(
        "redis://127.0.0.1:1/0", store_options={"timeout": 2}, secret=SECRET,
        telemetry=otel.telemetry,
    )  # fmt: skip
    try:
        with pytest.raises(StoreUnavailable):
            await mgr.validate(new_token())
    finally:
        await mgr.aclose()
    [span] = otel.finished()
    assert span.name == "asyncsess.validate"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "StoreUnavailable"
    assert span.attributes == {
        "asyncsess.store": "redis",
        "asyncsess.outcome": "store_error",
        "error.type": "asyncsess.exceptions.StoreUnavailable",
    }
    [count] = otel.metrics()["asyncsess.operations"][1:]
    assert count.attributes["asyncsess.outcome"] == "store_error" and count.value == 1


async def test_a_near_cache_hit_is_its_own_outcome(otel: Otel, redis_store_spec: StoreSpec) -> None:
    spec = redis_store_spec
    async with SessionManager(
        spec.url, store_options=spec.options, secret=SECRET, near_cache=100,
        telemetry=otel.telemetry,
    ) as mgr:  # fmt: skip
        token = await mgr.create("alice", DATA)
        first = await mgr.validate(token)
        assert first is not None and await mgr.validate(token) is first
        await mgr.wipe()
    assert otel.outcomes() == Counter(
        {("asyncsess.create", "ok"): 1, ("asyncsess.validate", "valid"): 1,
         ("asyncsess.validate", "cache_hit"): 1}
    )  # fmt: skip


async def test_the_running_manager_feeds_the_sessions_gauge(otel: Otel) -> None:
    mgr = SessionManager(telemetry=otel.telemetry)
    for i in range(3):
        await mgr.create(f"user-{i}", DATA)
    async with mgr:
        await anyio.wait_all_tasks_blocked()  # its first stats() ran
        gauge = otel.metrics()["asyncsess.sessions"][1:]
    assert {(p.attributes["asyncsess.store"], p.attributes["asyncsess.state"]): p.value
            for p in gauge} == {("memory", "live"): 3, ("memory", "expired"): 0}  # fmt: skip


async def test_without_an_sdk_validate_calls_nothing_of_opentelemetry() -> None:
    """The API is installed here (FastAPI needs it) and no SDK is configured in this process."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    calls: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            name = frame.f_code.co_filename
            if "opentelemetry" in name or "asyncsess/observe" in name:
                calls[f"{name}:{frame.f_code.co_name}"] += 1

    async with SessionManager("memory://") as mgr:
        token = await mgr.create("alice", DATA)
        sys.setprofile(profile)
        try:
            for candidate in (token, new_token(), "not a token"):
                await mgr.validate(candidate)
        finally:
            sys.setprofile(None)
    assert calls == Counter()


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_a_global_sdk_configured_after_the_manager_is_picked_up() -> None:
    out = run("""
        import anyio
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from asyncsess import SessionManager

        async def main():
            mgr = SessionManager("memory://")  # the default: the global providers, when set
            token = await mgr.create("alice", {"cart": [1, [2, 3]]})
            spans = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(spans))
            trace.set_tracer_provider(provider)
            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            async with mgr:  # checks the providers again at once, then every second
                await mgr.validate(token)
            names = [s.name for s in spans.get_finished_spans()]
            data = reader.get_metrics_data()
            counted = [m.name for r in data.resource_metrics for s in r.scope_metrics
                       for m in s.metrics]
            print(names[-1], "asyncsess.operations" in counted)

        anyio.run(main)
    """)
    assert out == "asyncsess.validate True"


def test_telemetry_is_switched_by_the_environment_and_a_mapping() -> None:
    out = run("""
        import anyio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from asyncsess import ConfigurationError, SessionManager

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)

        async def reported(mgr):
            spans.clear()
            async with mgr:
                await mgr.validate(await mgr.create("alice", {"cart": [1, [2, 3]]}))
            return sorted({s.name for s in spans.get_finished_spans()})

        async def main():
            print(await reported(SessionManager.from_env({})))
            print(await reported(SessionManager.from_env({"ASYNCSESS_TELEMETRY": "false"})))
            print(await reported(SessionManager.from_env({"ASYNCSESS_TELEMETRY": "on"})))
            print(await reported(SessionManager.from_config({"telemetry": "off"})))
            print(await reported(SessionManager.from_config({"telemetry": False})))
            try:
                SessionManager.from_env({"ASYNCSESS_TELEMETRY": "sometimes"})
            except ConfigurationError as exc:
                print(exc)

        anyio.run(main)
    """)
    on = "['asyncsess.create', 'asyncsess.validate']"
    assert out.splitlines() == [
        on,
        "[]",
        on,
        "[]",
        "[]",
        "ASYNCSESS_TELEMETRY must be true or false, not 'sometimes'",
    ]


def test_without_the_api_nothing_is_reported_and_asking_for_it_says_what_to_install() -> None:
    out = run("""
        import sys
        from importlib.abc import MetaPathFinder

        class Hide(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ImportError(f"no module named {name!r} (hidden)")

        sys.meta_path.insert(0, Hide())
        import anyio
        from asyncsess import MissingDependency, SessionManager

        async def main():
            async with SessionManager("memory://") as mgr:
                token = await mgr.create("alice", {"cart": [1, [2, 3]]})
                assert (await mgr.validate(token)).user_id == "alice"
            try:
                SessionManager("memory://", telemetry=True)
            except MissingDependency as exc:
                print(exc)

        anyio.run(main)
    """)
    assert out == 'telemetry needs the opentelemetry-api package: pip install "asyncsess[otel]"'


def test_bad_settings_say_what_to_fix() -> None:
    with pytest.raises(ConfigurationError, match="stats_interval must be positive"):
        Telemetry(stats_interval=0)
    assert Telemetry(stats_interval=None).stats_interval is None
    with pytest.raises(ConfigurationError, match="telemetry must be True, False, None or a"):
        SessionManager(telemetry="yes")  # type: ignore[arg-type]
