"""The soak (``benchmarks/soak``): its oracle flags what it must, its relay breaks what it
says, and the quick run passes (4 app processes, Redis Cluster failover, PostgreSQL restart,
dropped and blackholed connections, a killed app, a clock step). The last runs real servers
for about four minutes: nox runs it on the first Python only (marker ``soak``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak.load import Event
from benchmarks.soak.oracle import Fault, Verdict, judge
from benchmarks.soak.relay import Relay
from tests.backends import unavailable

ROOT = Path(__file__).resolve().parent.parent
IDLE, ABSOLUTE = 30.0, 60.0
BOUNDS = {"validate": 5.0, "create": 3.0, "revoke": 3.0, "update": 5.0}


def ev(op: str, t0: float, result: object = None, token: str | None = "t1", ok: bool = True,
       now: float | None = None, **args: object) -> Event:  # fmt: skip
    """An acknowledged (or failed) request of user u1 at t0, answered 10 ms later."""
    clock = t0 if now is None else now
    return Event(op, "u1", token, "app0", t0, t0 + 0.01, ok, None if ok else "StoreUnavailable",
                 result, clock, clock + 0.01, dict(args))  # fmt: skip


def session(e: float, a: float, rev: int = 1) -> dict[str, object]:
    return {"u": "u1", "v": 1, "e": e, "a": a, "rev": rev}


def check(events: list[Event], faults: list[Fault] | None = None) -> Verdict:
    return judge(events, faults or [], idle=IDLE, absolute=ABSOLUTE, bounds=BOUNDS)


def test_oracle_flags_an_accept_after_an_acknowledged_revoke() -> None:
    t = 1000.0
    verdict = check([
        ev("create", t, "raw", user="u1", rev=1),
        ev("validate", t + 1, session(t + 31, t + 60)),
        ev("revoke", t + 2, True),
        ev("validate", t + 3, session(t + 31, t + 60)),
    ])  # fmt: skip
    assert [w.kind for w in verdict.wrong_accepts] == ["accepted after revoke"]


def test_oracle_flags_an_accept_after_absolute_expiry_but_not_after_a_failed_revoke() -> None:
    t = 1000.0
    verdict = check([
        ev("create", t, "raw", user="u1", rev=1),
        ev("revoke", t + 1, ok=False),  # not acknowledged: the session may live on
        ev("validate", t + 2, session(t + 31, t + 60)),
        ev("validate", t + 61, session(t + 62, t + 60)),
    ])  # fmt: skip
    assert [w.kind for w in verdict.wrong_accepts] == ["accepted after absolute expiry"]


def test_oracle_counts_a_lost_session_and_a_lost_update_and_names_the_fault() -> None:
    t = 1000.0
    kill = Fault("redis primary kill", t + 2, t + 4)
    events = [
        ev("create", t, "raw", user="u1", rev=1),
        ev("update", t + 1, True, rev=2),
        ev("validate", t + 5, session(t + 31, t + 60, rev=1)),  # the update is gone
        ev("create", t + 12, "raw2", token="t2", user="u1", rev=3),
        ev("validate", t + 20, None, token="t2"),  # gone 22 s before its idle expiry
        ev("validate", t + 25, None),  # t1 expired? no: renewed at t+5 to t+31 -> lost too
    ]
    verdict = check(events, [kill])
    kinds = sorted((f.kind, f.cause) for f in verdict.losses)
    assert kinds == [
        ("session lost", "redis primary kill"),
        ("session lost", "unexplained"),  # t2 was written after the fault: no excuse
        ("update lost", "redis primary kill"),
    ]
    assert not verdict.wrong_accepts


def test_oracle_does_not_count_an_expired_session_or_a_stepped_clock_as_lost() -> None:
    t = 1000.0
    verdict = check([
        ev("create", t, "raw", user="u1", rev=1),
        ev("validate", t + 10, None, now=t + 35),  # that app's clock is 25 s ahead
        ev("validate", t + 31, None),  # idle expiry passed
    ])  # fmt: skip
    assert not verdict.losses and not verdict.wrong_accepts


def test_oracle_flags_a_request_over_its_bound() -> None:
    slow = ev("validate", 1000.0, None, token=None)
    slow.t1 = slow.t0 + 6.0
    hung = ev("create", 1010.0, ok=False)
    hung.err = "hang"
    assert [h.kind for h in check([slow, hung]).hangs] == ["slow", "hang"]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):  # the relay resets its upstream side too
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _roundtrip(port: int, payload: bytes, wait: float = 1.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(wait):
            return await reader.read(1024)
    finally:
        writer.close()


async def _is_reset(reader: asyncio.StreamReader) -> bool:
    """Whether the connection ends (EOF or RST) within a second, with no data."""
    try:
        async with asyncio.timeout(1):
            return await reader.read(1024) == b""
    except ConnectionResetError:
        return True


@pytest.mark.anyio
async def test_relay_forwards_drops_and_blackholes() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    relay = Relay(server.sockets[0].getsockname()[1])
    await relay.start()
    try:
        assert await _roundtrip(relay.port, b"ping") == b"ping"
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"open")
        assert await reader.read(1024) == b"open"
        relay.drop()  # the open connection is reset, and new ones as they come
        assert await _is_reset(reader)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await _is_reset(reader)
        writer.close()
        relay.heal()
        assert await _roundtrip(relay.port, b"back") == b"back"
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        relay.blackhole()  # connections stay up, but nothing comes through
        writer.write(b"void")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await reader.read(1024)
        with pytest.raises(TimeoutError):
            await _roundtrip(relay.port, b"void", wait=0.3)
        relay.heal()  # what was blackholed is reset; new connections work
        assert await _is_reset(reader)
        writer.close()
        assert await _roundtrip(relay.port, b"again") == b"again"
    finally:
        await relay.aclose()
        server.close()


@pytest.mark.soak
@pytest.mark.timeout(420)
def test_the_quick_soak_passes(tmp_path: Path) -> None:
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            unavailable(binary, "install redis-server (it brings redis-cli)")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and not shutil.which("initdb"):
        unavailable("PostgreSQL's initdb and pg_ctl", "install the postgresql server package")
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--quick", "--no-chart", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "soak-quick.json").read_text())
    assert report["passed"] and not report["failures"]
    scenarios = {sc["scenario"]: sc for sc in report["scenarios"]}
    assert len(scenarios) == 4
    for sc in scenarios.values():
        assert sc["faults"] and all(f["repaired_after_s"] > 0 for f in sc["faults"])
        assert sc["oracle"]["checked"]["accepts"] > 500  # the checks had something to check
        assert not sc["oracle"]["wrong_accepts"] and not sc["oracle"]["hang_count"]
    durable = scenarios["redis-cluster wait_replicas=1"]
    assert durable["faults"][0]["requests_failed"] > 0  # the failover did bite
    assert not durable["oracle"]["losses_by_cause"]
