"""RateLimiter on memory and on the machine's Redis: at most N hits in any window of one
period (checked against a brute-force model over long random sequences), exact under
concurrency, exact retry_after with an injected clock, refund, reset, keyed key hashing,
TTLs, and idle-key cleanup."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis as SyncRedis
from redis import RedisError
from redis.asyncio import Redis

from asyncsess import ConfigurationError, SessionManager, StoreUnavailable
from asyncsess.ratelimit import Decision, Rate, RateLimiter, parse_rate
from tests.backends import unavailable
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "a test secret for the rate limiter, 32+ bytes"
MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of the test's own on the machine's Redis, wiped afterwards."""
    try:
        with SyncRedis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    except RedisError:
        unavailable("Redis at 127.0.0.1:6379", "start it with: redis-server --daemonize yes")
    prefix = f"asyncsess-test:rl:{uuid.uuid4().hex[:12]}:"
    yield prefix
    with SyncRedis.from_url(REDIS_URL, socket_timeout=5) as client:
        for key in list(client.scan_iter(match=prefix + "*", count=1000)):
            client.delete(key)


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """Build limiters on the parametrised store; closed after the test."""
    created: list[RateLimiter] = []
    options: dict[str, Any] = {}
    if request.param == "redis":
        options = {
            "store": REDIS_URL,
            "prefix": request.getfixturevalue("redis_prefix"),
            "secret": SECRET,
        }

    def make(rate: str = "5/minute", **kwargs: Any) -> RateLimiter:
        limiter = RateLimiter(rate, **{**options, **kwargs})
        created.append(limiter)
        return limiter

    try:
        yield make
    finally:
        for limiter in created:
            await limiter.aclose()


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("5/minute", Rate(5, 60.0)),
        ("100/hour", Rate(100, 3600.0)),
        ("10/second", Rate(10, 1.0)),
        ("3/15minutes", Rate(3, 900.0)),
        (" 3 / 15 min ", Rate(3, 900.0)),
        ("1 per day", Rate(1, 86400.0)),
        ("2/H", Rate(2, 3600.0)),
    ],
)
def test_parse_rate(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "text", ["", "5", "5/", "/minute", "0/minute", "5/0minutes", "5/fortnight", "-1/s", "5/1.5s", 5]
)
def test_bad_rates_are_configuration_errors(text: object) -> None:
    with pytest.raises(ConfigurationError):
        parse_rate(text)
    with pytest.raises(ConfigurationError):
        RateLimiter(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"burst": 0},
        {"burst": 1.5},
        {"rate": "3/minute", "burst": 4},
        {"rate": "100001/hour"},
        {"secret": "short"},
        {"store": REDIS_URL},  # a Redis limiter needs a secret
        {"store": "nope://x"},
        {"store": 42},
        {"cleanup_interval": 0},
        {"rate": "10000000/second"},
        {"rate": Rate(0, 60.0)},
        {"rate": Rate(1, 0.0)},
    ],
)
def test_bad_options_are_configuration_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(**bad)


@pytest.mark.parametrize("frozen", [True, False], ids=["injected-clock", "real-clock"])
async def test_exactly_n_of_1000_concurrent_hits(
    make_limiter: MakeLimiter, clock: FakeClock, frozen: bool
) -> None:
    limiter = make_limiter("25/hour", clock=clock if frozen else None)
    decisions: list[Decision] = []

    async def hit() -> None:
        decisions.append(await limiter.hit("one key"))

    async with anyio.create_task_group() as tg:
        for _ in range(1000):
            tg.start_soon(hit)
    allowed = [d for d in decisions if d.allowed]
    assert len(decisions) == 1000
    assert len(allowed) == 25
    assert sorted(d.remaining for d in allowed) == list(range(25))
    assert all(d.retry_after > 0 and d.remaining == 0 for d in decisions if not d.allowed)


async def test_retry_after_is_exact_with_an_injected_clock(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter("3/minute", clock=clock)  # 3 in any minute, all 3 at once
    assert [await limiter.hit("k") for _ in range(3)] == [
        Decision(True, 2, 0.0),
        Decision(True, 1, 0.0),
        Decision(True, 0, 0.0),
    ]
    assert await limiter.hit("k") == Decision(False, 0, 60.0)
    clock.advance(5)
    assert await limiter.hit("k") == Decision(False, 0, 55.0)  # refused hits are not counted
    clock.advance(54)
    assert await limiter.hit("k") == Decision(False, 0, 1.0)
    clock.advance(1)  # the three hits of a minute ago have left the window
    assert await limiter.hit("k") == Decision(True, 2, 0.0)
    clock.advance(30)
    assert await limiter.hit("k") == Decision(True, 1, 0.0)
    assert await limiter.hit("k") == Decision(True, 0, 0.0)
    assert await limiter.hit("k") == Decision(False, 0, 30.0)
    clock.advance(3600)
    assert await limiter.peek("k") == Decision(True, 3, 0.0)


async def test_burst(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    steady = make_limiter("6/minute", burst=1, clock=clock)
    assert (await steady.hit("k")).allowed
    assert await steady.hit("k") == Decision(False, 0, 10.0)
    clock.advance(10)
    assert await steady.hit("k") == Decision(True, 0, 0.0)

    # 10 in any 10 s, at most 4 of them in any 4 s
    bursty = make_limiter("10/10seconds", burst=4, clock=clock)
    assert [(await bursty.hit("k")).allowed for _ in range(5)] == [True] * 4 + [False]
    assert await bursty.peek("k") == Decision(False, 0, 4.0)
    clock.advance(4)
    assert [(await bursty.hit("k")).remaining for _ in range(4)] == [3, 2, 1, 0]
    clock.advance(4)
    assert [(await bursty.hit("k")).allowed for _ in range(3)] == [True, True, False]
    assert await bursty.peek("k") == Decision(False, 0, 2.0)  # the period's 10 are used


async def test_peek_does_not_count(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter("2/minute", clock=clock)
    assert await limiter.peek("k") == Decision(True, 2, 0.0)
    assert await limiter.peek("k") == Decision(True, 2, 0.0)
    await limiter.hit("k")
    assert await limiter.peek("k") == Decision(True, 1, 0.0)
    await limiter.hit("k")
    assert await limiter.peek("k") == Decision(False, 0, 60.0)
    assert await limiter.peek("k") == Decision(False, 0, 60.0)


async def test_reset_and_independent_keys(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter("2/hour", clock=clock)
    for _ in range(2):
        await limiter.hit("user:alice")
    assert not (await limiter.hit("user:alice")).allowed
    assert (await limiter.hit("user:bob")).allowed
    assert await limiter.reset("user:alice") is True
    assert await limiter.reset("user:alice") is False
    assert await limiter.hit("user:alice") == Decision(True, 1, 0.0)
    assert await limiter.hit("user:bob") == Decision(True, 0, 0.0)


async def test_keys_must_be_str(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    for bad in (None, b"k", 1):
        with pytest.raises(TypeError):
            await limiter.hit(bad)  # type: ignore[arg-type]


async def test_redis_keys_are_hashed_and_expire(redis_prefix: str, clock: FakeClock) -> None:
    async with Redis.from_url(REDIS_URL) as client:
        limiter = RateLimiter("3/minute", store=client, prefix=redis_prefix, secret=SECRET)
        await limiter.hit("user:alice@example.com")  # on the server's clock
        await limiter.hit("user:alice@example.com")
        keys = [key async for key in client.scan_iter(match=redis_prefix + "*")]
        assert len(keys) == 1
        assert b"alice" not in keys[0]
        assert 30_000 < await client.pttl(keys[0]) <= 60_000  # a period after the last hit
        await limiter.aclose()
        assert await client.ping()  # an app-owned client stays open
        assert limiter.tracked_keys() is None
        with anyio.fail_after(10):  # generous: it returns at once, a loop would never
            await limiter.cleanup_task()  # nothing to clean in Redis


async def test_redis_url_client_is_closed_and_failures_are_mapped(redis_prefix: str) -> None:
    dead = RateLimiter(
        store="redis://127.0.0.1:1/0", prefix=redis_prefix, timeout=0.5, secret=SECRET
    )
    with pytest.raises(StoreUnavailable):
        await dead.hit("k")
    await dead.aclose()
    with pytest.raises(ConfigurationError):
        RateLimiter(store=object())
    with pytest.raises(ConfigurationError):
        RateLimiter(store=REDIS_URL, prefix="", secret=SECRET)


async def test_cleanup_drops_only_idle_keys(clock: FakeClock) -> None:
    limiter = RateLimiter("3/minute", clock=clock)
    await limiter.hit("light")
    for i in range(2500):
        await limiter.hit(f"client:{i}")
    clock.advance(20)
    for _ in range(3):
        await limiter.hit("heavy")  # 20 s later
    assert limiter.tracked_keys() == 2502
    assert await limiter.cleanup() == 0
    clock.advance(40)  # a minute after the first hits, 40 s after heavy's
    before = await limiter.peek("heavy")
    assert await limiter.cleanup() == 2501
    assert limiter.tracked_keys() == 1
    assert await limiter.peek("heavy") == before  # cleanup never changes a decision
    assert await limiter.peek("light") == Decision(True, 3, 0.0)
    clock.advance(20)
    assert await limiter.cleanup() == 1
    assert limiter.tracked_keys() == 0


async def test_cleanup_task_runs_in_the_managers_task_group(clock: FakeClock) -> None:
    limiter = RateLimiter("3/minute", clock=clock, cleanup_interval=0.01)
    mgr = SessionManager("memory://")
    mgr.add_background_task(limiter.cleanup_task)
    async with mgr:
        for i in range(100):
            await limiter.hit(f"k{i}")
        assert limiter.tracked_keys() == 100
        clock.advance(60)
        with anyio.fail_after(5):
            while limiter.tracked_keys():
                await anyio.sleep(0.01)
    assert limiter.tracked_keys() == 0


async def test_processes_share_counters_but_not_with_other_rates(
    redis_prefix: str, clock: FakeClock
) -> None:
    """Two limiters of one rate on one Redis act as one (two processes of an app)."""
    first, second, other = (
        RateLimiter(rate, store=REDIS_URL, prefix=redis_prefix, clock=clock, secret=SECRET)
        for rate in ("2/minute", "2/minute", "3/minute")
    )
    try:
        assert await first.hit("k") == Decision(True, 1, 0.0)
        assert await second.hit("k") == Decision(True, 0, 0.0)
        assert await first.hit("k") == Decision(False, 0, 60.0)
        assert await other.hit("k") == Decision(True, 2, 0.0)
    finally:
        for limiter in (first, second, other):
            await limiter.aclose()


def _model(times: list[int], now: int, limits: list[tuple[int, int]]) -> bool:
    """The rule by brute force: fewer than count allowed hits in (now - window, now]."""
    return all(sum(now - window < t <= now for t in times) < count for count, window in limits)


@st.composite
def _runs(draw: st.DrawFn) -> tuple[int, int, int, list[int]]:
    count = draw(st.integers(1, 8))
    burst = draw(st.integers(1, count))
    # Redis expires a key one period after its last hit in *real* time: a period of 20 s
    # or more outlasts any run, whatever the injected clock says
    period_ms = draw(st.integers(20_000, 3_600_000))
    gap = st.one_of(st.just(0), st.integers(0, period_ms // count + 1), st.integers(0, period_ms))
    gaps = draw(st.lists(gap, min_size=100, max_size=400))
    return count, burst, period_ms, gaps


@pytest.mark.parametrize("backend", ["memory", "redis"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(run=_runs())
def test_no_window_of_one_period_holds_more_than_count(
    backend: str, request: pytest.FixtureRequest, run: tuple[int, int, int, list[int]]
) -> None:
    """Long random hit sequences on the injected clock: every decision is the model's, so
    no window of one period holds more than ``count`` allowed hits, nor any window of
    ``burst / count`` of it more than ``burst``."""
    count, burst, period_ms, gaps = run
    options: dict[str, Any] = {}
    if backend == "redis":
        options = {"store": REDIS_URL, "secret": SECRET}
        options["prefix"] = request.getfixturevalue("redis_prefix") + uuid.uuid4().hex[:8] + ":"
    clock = FakeClock()
    window = period_ms * 1000
    limits = [(count, window), (burst, window * burst // count)]

    async def play() -> list[int]:
        limiter = RateLimiter(Rate(count, period_ms / 1000), burst=burst, clock=clock, **options)
        allowed: list[int] = []
        try:
            for gap in gaps:
                clock.advance(gap / 1000)
                now = round(clock() * 1_000_000)
                decision = await limiter.hit("k")
                assert decision.allowed == _model(allowed, now, limits)
                if decision.allowed:
                    allowed.append(now)
        finally:
            await limiter.aclose()
        return allowed

    allowed = anyio.run(play)
    assert all(later - t >= window for t, later in zip(allowed, allowed[count:], strict=False))
    burst_window = window * burst // count
    assert all(
        later - t >= burst_window for t, later in zip(allowed, allowed[burst:], strict=False)
    )


async def test_100_per_hour_means_100_in_any_hour(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    """A GCRA of "100/hour" let 199 through in an hour (100 at once, then one per 36 s)."""
    limiter = make_limiter("100/hour", clock=clock)
    allowed = 0
    for _ in range(3600 // 12):  # a try every 12 s for an hour, 5 at a time
        allowed += sum([(await limiter.hit("k")).allowed for _ in range(5)])
        clock.advance(12)
    assert allowed == 100
    assert (await limiter.hit("k")).allowed  # an hour after the first hits


async def test_refund_takes_back_one_counted_hit(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter("2/minute", clock=clock)
    first = await limiter.hit("k")
    clock.advance(1)
    second = await limiter.hit("k")
    refused = await limiter.hit("k")
    assert not refused.allowed
    assert await limiter.refund("k", refused) is False  # a refused hit was never counted
    assert await limiter.refund("k", second) is True
    assert await limiter.refund("k", second) is False
    assert await limiter.peek("k") == Decision(True, 1, 0.0)
    assert await limiter.refund("other", first) is False
    assert await limiter.refund("k", first) is True
    assert await limiter.peek("k") == Decision(True, 2, 0.0)


async def test_a_dump_of_the_redis_keys_gives_no_names_back(redis_prefix: str) -> None:
    """Keys are HMACs under the secret: hashing known usernames without it finds nothing."""
    names = [f"user:{name}" for name in ("alice", "bob", "carol@example.com", "203.0.113.7")]
    limiter = RateLimiter("5/minute", store=REDIS_URL, prefix=redis_prefix, secret=SECRET)
    other = RateLimiter("5/minute", store=REDIS_URL, prefix=redis_prefix, secret=SECRET[::-1])
    try:
        for name in names:
            await limiter.hit(name)
            await other.hit(name)  # another secret: other keys
        async with Redis.from_url(REDIS_URL) as client:
            dumped = {
                key.decode()[len(redis_prefix) :]
                async for key in client.scan_iter(match=redis_prefix + "*")
            }
        assert len(dumped) == 2 * len(names)
        guesses = set()
        for name in names:
            for scope in ("", "5/60000000/5\x00", "user:"):
                raw = (scope + name).encode()
                guesses |= {
                    hashlib.sha256(raw).hexdigest()[:32],
                    hashlib.blake2b(raw, digest_size=16).hexdigest(),
                    hmac.new(b"", raw, "sha256").hexdigest()[:32],
                    hmac.new(scope.encode(), name.encode(), "sha256").hexdigest()[:32],
                }
        assert not dumped & guesses
        assert not any(name.split(":")[1].encode().hex() in key for key in dumped for name in names)
    finally:
        await limiter.aclose()
        await other.aclose()


async def test_memory_stays_bounded_without_the_cleanup_task(clock: FakeClock) -> None:
    """Every counted hit drops idle keys at the front (an Accounts used without a manager)."""
    limiter = RateLimiter("3/minute", clock=clock)
    for i in range(1000):
        await limiter.hit(f"old:{i}")
    clock.advance(60)
    for i in range(1000):
        await limiter.hit(f"new:{i}")
    assert limiter.tracked_keys() == 1000
    assert await limiter.peek("new:0") == Decision(True, 2, 0.0)  # live keys are kept
