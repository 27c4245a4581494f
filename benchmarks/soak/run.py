"""Run the soak: scenarios, each 4 app processes under load while faults are injected.

    python -m benchmarks.soak            # the full run (~10 min): results/soak.json, soak.png
    python -m benchmarks.soak --quick    # <= 5 min, for CI: results/soak-quick.json, .png

Scenarios: a Redis Cluster (3 primaries, 1 replica each) without and with
``wait_replicas=1``; a private PostgreSQL reached through a TCP relay; the
file store on one directory shared by the 4 processes. Faults: ``kill -9`` of a
Redis primary (its replica takes over; the killed node rejoins as a replica),
a PostgreSQL crash-restart, the relay resetting every connection and then
blackholing them, ``kill -9`` of an app process (restarted by the "supervisor"),
and a forward clock step on one app process. Exit status 1 when the oracle
finds a wrong accept, a hang, a bug, or a lost session where the store
promises durability.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .fleet import AppProcess, Fleet
from .load import LoadConfig, run_load
from .oracle import Fault, judge
from .relay import Relay
from .report import chart, summarize
from .servers import PostgresServer, ReplicatedCluster

RESULTS = Path(__file__).resolve().parent.parent / "results"
APPS = 4
TIMEOUT = 2.0  # each store call's bound (the stores' ``timeout``)
#: Store calls each operation may wait on, one after the other: its bound is that many
#: timeouts plus SLACK (the event loop of a busy 2-core machine). A validate may queue
#: behind a batch of lookups in flight, then run its own, then renew.
CALLS = {"validate": 3, "create": 1, "update": 3, "rotate": 4, "revoke": 1, "revoke_all": 2,
         "login": 2}  # fmt: skip
SLACK = 1.5
LOGINS = [("alice", "correct horse battery"), ("bob", "staple-gun-and-more")]


@dataclass(frozen=True)
class Scenario:
    """One store under load with its faults at offsets (seconds) into the load."""

    name: str
    durable: bool  # whether the store promises an acknowledged write survives its faults
    faults: tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class Profile:
    """The sizes of a run."""

    seconds: float
    users: int
    idle: float
    absolute: float
    scenarios: tuple[Scenario, ...]


def _scenarios(length: float, quick: bool) -> tuple[Scenario, ...]:
    def at(*pairs: tuple[float, str]) -> tuple[tuple[float, str], ...]:
        return tuple((round(f * length, 1), kind) for f, kind in pairs)

    redis = (
        at((0.2, "redis primary kill"), (0.55, "app kill"))
        if quick
        else at((0.15, "redis primary kill"), (0.45, "app kill"), (0.6, "redis primary kill"))
    )
    return (
        Scenario("redis-cluster", False, redis),
        Scenario("redis-cluster wait_replicas=1", True, redis),
        Scenario("postgresql via relay", True, at(
            (0.1, "postgresql restart"), (0.28, "relay drop"), (0.45, "relay blackhole"),
            (0.65, "clock step"),
        )),
        Scenario("file (shared directory)", True, at((0.25, "app kill"), (0.5, "clock step"))),
    )  # fmt: skip


def profile(quick: bool) -> Profile:
    """Quick: 4 scenarios of 45 s; full: 4 of 120 s."""
    if quick:
        return Profile(45.0, 24, 15.0, 25.0, _scenarios(45.0, True))
    return Profile(120.0, 40, 20.0, 40.0, _scenarios(120.0, False))


class Soak:
    """The servers, the relay, the fleet of the scenario running, and the fault injectors."""

    def __init__(self, root: Path, prof: Profile) -> None:
        self.root, self.prof = root, prof
        self.cluster = ReplicatedCluster(root / "redis")
        self.pg = PostgresServer()
        self.relay: Relay | None = None
        self.fleet = Fleet([])
        self.killed = 0
        self.events_to: Path | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.cluster.start)
        await asyncio.to_thread(self.pg.start)
        self.relay = Relay(self.pg.port)
        await self.relay.start()

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.aclose()
        await asyncio.to_thread(self.cluster.stop)
        await asyncio.to_thread(self.pg.stop)

    def store(self, scenario: Scenario) -> tuple[str, dict[str, Any]]:
        """The URL and options the app processes of ``scenario`` open."""
        prefix = f"soak-{uuid.uuid4().hex[:8]}:"
        if scenario.name.startswith("redis"):
            options: dict[str, Any] = {"prefix": prefix, "timeout": TIMEOUT}
            if scenario.durable:
                options["wait_replicas"] = 1
            return self.cluster.url, options
        if scenario.name.startswith("postgresql"):
            assert self.relay is not None
            url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.relay.port}/postgres"
            return url, {"timeout": TIMEOUT, "table": "soak_" + prefix[5:13]}
        directory = self.root / ("files-" + prefix[5:13])
        return directory.as_uri(), {}

    # -- faults: each returns the Fault with its start and repair times ----------------

    async def redis_primary_kill(self) -> Fault:
        node = await asyncio.to_thread(self.cluster.primary, self.killed)
        self.killed += 1
        start = time.time()
        await asyncio.to_thread(self.cluster.kill, node)
        await asyncio.to_thread(self.cluster.wait_failover)
        promoted = time.time()
        await asyncio.sleep(3.0)
        await asyncio.to_thread(self.cluster.rejoin, node)
        detail = f"replica promoted after {promoted - start:.1f} s; killed node back as a replica"
        return Fault("redis primary kill", start, time.time(), detail)

    async def postgresql_restart(self) -> Fault:
        start = time.time()
        await asyncio.to_thread(self.pg.restart)
        return Fault("postgresql restart", start, time.time(), "pg_ctl restart -m immediate")

    async def relay_drop(self) -> Fault:
        assert self.relay is not None
        start = time.time()
        self.relay.drop()
        await asyncio.sleep(2.0)
        self.relay.heal()
        return Fault("relay drop", start, time.time(), "every connection reset for 2 s")

    async def relay_blackhole(self) -> Fault:
        assert self.relay is not None
        start = time.time()
        self.relay.blackhole()
        await asyncio.sleep(3 * TIMEOUT)
        self.relay.heal()
        return Fault(
            "relay blackhole", start, time.time(), f"no bytes through for {3 * TIMEOUT:g} s"
        )

    async def app_kill(self) -> Fault:
        app = self.fleet.apps[1]
        start = time.time()
        app.kill()
        await asyncio.sleep(2.0)
        await app.start()
        return Fault("app kill", start, time.time(), f"kill -9 {app.name}; restarted after 2 s")

    async def clock_step(self) -> Fault:
        app, step = self.fleet.apps[2], 10.0
        lasts = 8.0 if self.prof.seconds < 60 else 15.0
        start = time.time()
        await app.request("clock", offset=step)
        await asyncio.sleep(lasts)
        await app.request("clock", offset=0.0)
        return Fault("clock step", start, time.time(), f"{app.name} +{step:g} s for {lasts:g} s")

    def injector(self, kind: str) -> Callable[[], Awaitable[Fault]]:
        fault: Callable[[], Awaitable[Fault]] = getattr(self, kind.replace(" ", "_"))
        return fault

    async def scenario(self, scenario: Scenario, seed: int) -> dict[str, Any]:
        """Run one scenario and return its summary."""
        url, options = self.store(scenario)
        prof = self.prof
        argv = [
            url,
            "--options",
            json.dumps(options),
            "--idle",
            str(prof.idle),
            "--absolute",
            str(prof.absolute),
            "--sweep",
            "5",
            "--users",
            *(f"{u}:{p}" for u, p in LOGINS),
        ]
        slug = "".join(c if c.isalnum() else "-" for c in scenario.name)
        apps = [AppProcess(f"app{i}", argv, self.root / f"{slug}-app{i}.log") for i in range(APPS)]
        self.fleet = Fleet(apps)
        for app in apps:  # one at a time: each creates the schema it needs if missing
            await app.start()
        config = LoadConfig(prof.users, 5.0, prof.idle, prof.absolute, 30.0, LOGINS)
        t0 = time.time()
        load = asyncio.ensure_future(run_load(self.fleet, config, prof.seconds, seed))
        faults = []
        try:
            for at, kind in scenario.faults:
                await asyncio.sleep(max(0.0, t0 + at - time.time()))
                faults.append(await self.injector(kind)())
                print(f"  {scenario.name}: {faults[-1].name} ({faults[-1].detail})", flush=True)
            events = await load
        finally:
            await self.fleet.stop()
        bounds = {op: n * TIMEOUT + SLACK for op, n in CALLS.items()}
        verdict = judge(events, faults, idle=prof.idle, absolute=prof.absolute, bounds=bounds)
        if self.events_to is not None:
            with open(self.events_to / f"{slug}.jsonl", "w") as out:  # noqa: ASYNC230
                for e in events:
                    out.write(json.dumps(dataclasses.asdict(e)) + "\n")
        meta = {"durable": scenario.durable, "store_options": {
            k: v for k, v in options.items() if k in ("timeout", "wait_replicas")
        }}  # fmt: skip
        return summarize(scenario.name, meta, events, faults, verdict, t0)


def gate(scenarios: list[dict[str, Any]]) -> list[str]:
    """Why the run fails (empty when it passes)."""
    reasons = []
    for sc in scenarios:
        oracle, name = sc["oracle"], sc["scenario"]
        if oracle["wrong_accepts"]:
            reasons.append(f"{name}: {len(oracle['wrong_accepts'])} wrong accepts")
        if oracle["hang_count"]:
            reasons.append(f"{name}: {oracle['hang_count']} requests over their time bound")
        if oracle["bugs"]:
            reasons.append(f"{name}: {len(oracle['bugs'])} unexpected exceptions")
        lost = oracle["losses_by_cause"]
        if sc["durable"] and lost:
            reasons.append(f"{name}: acknowledged writes lost: {lost}")
    return reasons


def versions(soak: Soak) -> dict[str, str]:
    """Server and library versions the run used."""
    found = {"python": platform.python_version(), "machine": platform.machine()}
    for package in ("asyncsess", "redis", "asyncpg", "sqlalchemy", "aiofiles"):
        found[package] = version(package)
    found["redis-server"] = soak.cluster.version()
    found["postgresql"] = soak.pg.version()
    return found


async def main_async(args: argparse.Namespace) -> int:
    prof = profile(args.quick)
    chosen = [s for s in prof.scenarios if not args.only or any(o in s.name for o in args.only)]
    root = Path(tempfile.mkdtemp(prefix="asyncsess-soak-"))
    soak = Soak(root, prof)
    soak.events_to = Path(args.events) if args.events else None
    started = datetime.now(UTC)
    results = []
    try:
        await soak.start()
        for n, scenario in enumerate(chosen):
            print(f"soak: {scenario.name} for {prof.seconds:g} s", flush=True)
            await asyncio.to_thread(soak.cluster.wait_healthy)
            results.append(await soak.scenario(scenario, seed=args.seed + n))
        meta = versions(soak)
    finally:
        await soak.stop()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    reasons = gate(results)
    stem = "soak-quick" if args.quick else "soak-partial" if args.only else "soak"
    report = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "versions": meta,
        "profile": {
            "seconds": prof.seconds,
            "users": prof.users,
            "ops_per_user_s": 5.0,
            "apps": APPS,
            "idle_timeout": prof.idle,
            "absolute_timeout": prof.absolute,
            "store_timeout": TIMEOUT,
            "op_bounds_s": {op: n * TIMEOUT + SLACK for op, n in CALLS.items()},
        },
        "passed": not reasons,
        "failures": reasons,
        "scenarios": results,
    }
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    if not args.no_chart:
        chart(results, out / f"{stem}.png")
    print(table(results))
    print(f"soak: wrote {out / stem}.json and .png; " + ("PASSED" if not reasons else "FAILED:"))
    for reason in reasons:
        print("  " + reason)
    return 0 if not reasons else 1


def early(fault: dict[str, Any]) -> str:
    n = fault.get("expired_early", 0)
    return f" ({n} expired early by the stepped clock)" if n else ""


def table(scenarios: list[dict[str, Any]]) -> str:
    """The per-fault table (markdown), as in the README."""
    lines = ["| scenario | fault | requests failed | recover p50 / p99 (s) | wrong accepts | "
             "sessions lost |", "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for sc in scenarios:
        for f in sc["faults"]:
            lines.append(
                f"| {sc['scenario']} | {f['fault']} | {f['requests_failed']} | "
                f"{f['recover_p50_s']} / {f['recover_p99_s']} | {f['wrong_accepts']} | "
                f"{f['sessions_lost']}{early(f)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="<= 5 minutes (CI)")
    parser.add_argument("--only", nargs="*", help="scenarios whose name contains one of these")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="directory for the JSON and PNG (default benchmarks/results)")
    parser.add_argument("--no-chart", action="store_true", help="JSON only (no matplotlib)")
    parser.add_argument("--events", help="a directory to write every request to (JSON lines)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    sys.exit(asyncio.run(main_async(parser.parse_args())))
