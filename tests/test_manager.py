"""Manager behaviour that is not about one store: configuration, fail-closed, lifecycle."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskStatus
from blockbuster import BlockingError

import asyncsess
from asyncsess import ConfigurationError, SessionManager, StoreError, StoreUnavailable
from asyncsess.stores.base import Record, Renewal
from asyncsess.stores.file import FileStore
from asyncsess.stores.memory import MemoryStore
from asyncsess.tokens import new_token
from tests.conftest import SECRET

pytestmark = pytest.mark.anyio


class BrokenStore(FileStore):
    """A file store whose backend 'fails' on reads, as a dead server would."""

    failure: Exception = ConnectionRefusedError("connection refused")

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (ConnectionRefusedError("refused"), StoreUnavailable),
        (TimeoutError(), StoreUnavailable),
        (RuntimeError("driver bug"), StoreError),
    ],
)
async def test_store_failure_fails_closed(
    tmp_path: Path, failure: Exception, expected: type
) -> None:
    store = BrokenStore(tmp_path)
    store.failure = failure
    mgr = SessionManager(store, secret=SECRET)
    token = await mgr.create("alice")
    with pytest.raises(expected) as info:
        await mgr.validate(token)
    assert info.value.__cause__ is failure
    assert token not in str(info.value)


def test_persistent_store_without_secret_is_refused() -> None:
    """Only the file store has a key of its own (its key file); any other persistent store
    needs a secret in privacy mode. Nothing is connected to find out."""
    with pytest.raises(ConfigurationError, match="ASYNCSESS_SECRET"):
        SessionManager("redis://localhost:1/0")
    SessionManager("redis://localhost:1/0", privacy_mode=False)  # clear data needs no secret
    SessionManager(FileStore("/nonexistent"))  # its key file is read when it opens


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": "short"},
        {"secret": [SECRET, 42]},
        {"idle_timeout": 0},
        {"absolute_timeout": -5},
        {"idle_timeout": "soon"},
        {"renew_fraction": 1.5},
        {"sweep_batch": 0},
        {"store": "nosuch://x"},
        {"store": "no-scheme"},
        {"store": 42},
        {"store": MemoryStore(), "store_options": {"a": 1}},
    ],
)
def test_misconfiguration_says_what_to_fix(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        SessionManager(**kwargs)  # type: ignore[arg-type]
    assert len(str(info.value)) > 20


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="memory, mongodb"):
        asyncsess.open_store("nosuch://x")


def test_secrets_are_not_in_repr() -> None:
    mgr = SessionManager("memory://", secret=SECRET)
    assert SECRET not in repr(mgr) and SECRET not in repr(mgr.__dict__)


def test_timedeltas_and_seconds() -> None:
    mgr = SessionManager(idle_timeout=timedelta(days=2), absolute_timeout=90.5)
    assert (mgr.idle_timeout, mgr.absolute_timeout) == (172800.0, 90.5)


async def test_async_with_runs_and_stops_background_tasks() -> None:
    ticks: list[int] = []

    async def ticker(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            ticks.append(1)
            await anyio.sleep(0.001)

    mgr = SessionManager(sweep_interval=0.001)
    mgr.add_background_task(ticker)
    async with mgr:
        token = await mgr.create("alice")
        await anyio.sleep(0.05)
    count = len(ticks)
    assert count > 0
    await anyio.sleep(0.02)
    assert len(ticks) == count  # stopped on exit
    assert await mgr.validate(token) is not None  # memory store survives aclose


async def test_a_blocking_call_on_the_event_loop_fails_the_suite() -> None:
    """The guard every test runs under: here a clock that sleeps, called by validate."""

    def sleepy_clock() -> float:
        time.sleep(0)
        return time.time()

    mgr = SessionManager(clock=sleepy_clock)
    with pytest.raises(BlockingError, match=r"time\.sleep"):
        await mgr.validate(new_token())


async def test_session_and_session_info_are_frozen_slotted_dataclasses() -> None:
    async with SessionManager("memory://") as mgr:
        token = await mgr.create("alice", {"cart": [1, 2], "prefs": {"theme": "dark"}})
        session = await mgr.validate(token)
        [info] = await mgr.sessions("alice")
        stats = await mgr.stats()
    assert session is not None
    assert info.id == session.id
    for value in (session, info, stats):
        assert dataclasses.is_dataclass(value)
        assert not isinstance(value, tuple)
        assert not hasattr(value, "__dict__")  # slotted
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, "x")
    assert (info.version, info.created, info.absolute_expires) == (
        session.version,
        session.created,
        session.absolute_expires,
    )
    assert info.created_at == session.created_at and info.expires_at.tzinfo is not None
    assert (stats.live, stats.expired, stats.cache_entries) == (1, 0, 1)
