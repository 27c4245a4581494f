"""``nox -s bench`` entry point: validate-path throughput per store, beside floors and peers.

    python -m benchmarks.bench [--quick] [--stores memory,file,...] [--seconds S] [--reps R]
                               [--otel-api] [--hot-path] [--no-visibility]

Writes a table to the terminal, ``benchmarks/results/latest.json`` and
``benchmarks/results/latest.png`` (``partial.json``/``.png`` for a ``--quick``
or ``--stores`` run, which leaves the README's figures alone). When Redis, the
Redis Cluster or PostgreSQL ran, the near cache's revoke-to-invisible latency
across processes is measured too (:mod:`benchmarks.visibility`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from . import hot_path, otel_api, visibility
from .harness import Prepared, Row, Sample, check_valid, measure, summarize

RESULTS = Path(__file__).resolve().parent / "results"
ROW_MODULES = ["local", "redis", "sql", "mongo"]
CONCURRENCY = (1, 64)
LIBRARIES = [
    "asyncsess", "anyio", "cryptography", "redis", "sqlalchemy", "aiosqlite", "asyncpg",
    "asyncmy", "pymongo", "starsessions", "aiohttp-session", "aiohttp", "fastapi-users",
    "fastapi-users-db-sqlalchemy", "starlette",
]  # fmt: skip


def load_rows(stores: set[str] | None) -> tuple[list[Row], dict[str, Any]]:
    """Import every row module; return its rows (filtered) and what servers they run on."""
    rows: list[Row] = []
    servers: dict[str, Any] = {}
    for name in ROW_MODULES:
        module = importlib.import_module(f"benchmarks.rows.{name}")
        rows += [r for r in module.ROWS if stores is None or r.store in stores]
        servers.update(getattr(module, "SERVERS", {}))
    return rows, servers


def versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def progress(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[2K{text}")
    else:
        sys.stderr.write(text + "\n")
    sys.stderr.flush()


async def run_store(
    store: str, rows: Sequence[Row], sessions: int, seconds: float, reps: int
) -> list[dict[str, Any]]:
    """Measure every row of one store, alternating rows inside each repetition."""
    samples: dict[tuple[str, int], list[Sample]] = {}
    async with AsyncExitStack() as stack:
        prepared: list[tuple[Row, Prepared]] = []
        for row in rows:
            progress(f"[{store}] preparing {row.name} ({sessions} sessions)")
            p = await stack.enter_async_context(row.prepare(sessions))
            await check_valid(p)
            prepared.append((row, p))
        for rep in range(reps):
            order = prepared[rep % len(prepared) :] + prepared[: rep % len(prepared)]
            for concurrency in CONCURRENCY:
                for row, p in order:
                    progress(f"[{store}] rep {rep + 1}/{reps}, {concurrency} tasks: {row.name}")
                    sample = await measure(p, concurrency, seconds)
                    samples.setdefault((row.name, concurrency), []).append(sample)
    results: list[dict[str, Any]] = []
    for row in rows:
        for concurrency in CONCURRENCY:
            reps_of_row = samples[(row.name, concurrency)]
            results.append(
                {"store": store, "row": row.name, "kind": row.kind,
                 "concurrency": concurrency, **summarize(reps_of_row),
                 "ops_per_s_each_rep": [round(s.ops_per_s, 1) for s in reps_of_row]}
            )  # fmt: skip
    floor_of = {r["concurrency"]: r["ops_per_s"] for r in results if r["kind"] == "floor"}
    for r in results:
        floor = floor_of.get(r["concurrency"])
        r["vs_floor"] = r["ops_per_s"] / floor if floor else None
    return results


#: Issue 12's targets: the default asyncsess row over the floor, at 64 tasks and at 1 task.
TARGETS: dict[str, dict[int, float]] = {
    "memory": {64: 0.5, 1: 0.9},
    "redis": {64: 2.0, 1: 0.9},
    "postgresql": {64: 2.5, 1: 0.9},
    "sqlite": {64: 1.5, 1: 0.9},
    "file": {64: 1.5, 1: 0.9},
}


#: Issue 13's targets: the near cache rows over the floor, at 64 tasks and at 1 task.
NEAR_CACHE = "asyncsess (sealed, near_cache)"
ROW_TARGETS: dict[tuple[str, str], dict[int, float]] = {
    ("redis", NEAR_CACHE): {64: 10.0, 1: 5.0},
    ("postgresql", NEAR_CACHE): {64: 10.0, 1: 5.0},
}


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each store's default asyncsess row (its first), and the rows of :data:`ROW_TARGETS`,
    against their targets: met or not."""
    wanted: list[tuple[str, str, dict[int, float]]] = []
    for store, by_tasks in TARGETS.items():
        rows = [r for r in results if r["store"] == store and r["kind"] == "asyncsess"]
        if rows:
            wanted.append((store, rows[0]["row"], by_tasks))
    wanted += [(store, name, by_tasks) for (store, name), by_tasks in ROW_TARGETS.items()]
    out = []
    for store, name, by_tasks in wanted:
        for concurrency, target in by_tasks.items():
            row = next(
                (r for r in results if (r["store"], r["row"], r["concurrency"])
                 == (store, name, concurrency)), None,
            )  # fmt: skip
            if row is None:
                continue
            ratio = row["vs_floor"]
            out.append(
                {"store": store, "row": name, "concurrency": concurrency, "target": target,
                 "vs_floor": ratio, "met": ratio is not None and ratio >= target}
            )  # fmt: skip
    return out


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'store':<14}{'row':<40}{'tasks':>6}{'ops/s':>11}{'p50 µs':>9}{'p99 µs':>9}"
    head += f"{'CPU µs/op':>11}{'x floor':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        ratio = f"{r['vs_floor']:.2f}" if r["vs_floor"] is not None else "—"
        lines.append(
            f"{r['store']:<14}{r['row'][:39]:<40}{r['concurrency']:>6}{r['ops_per_s']:>11,.0f}"
            f"{r['p50_us']:>9.1f}{r['p99_us']:>9.1f}{r['cpu_us_per_op']:>11.1f}{ratio:>9}"
        )
    return "\n".join(lines)


def chart(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = [r for r in results if r["concurrency"] == 64]
    stores = list(dict.fromkeys(r["store"] for r in rows))
    colors = {"asyncsess": "#2b8a3e", "floor": "#868e96", "peer": "#e8590c"}
    fig, ax = plt.subplots(figsize=(12, 0.5 * len(rows) + 1.5))
    labels: list[str] = []
    ticks: list[float] = []
    y = 0.0
    for store in stores:
        for r in (r for r in rows if r["store"] == store):
            ax.barh(y, r["ops_per_s"], color=colors[r["kind"]])
            labels.append(f"{store}: {r['row']}")
            ticks.append(y)
            y += 1
        y += 0.5
    ax.set_yticks(ticks, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("validations per second at 64 concurrent tasks (log scale)")
    ax.set_title("asyncsess validate vs the bare client (floor) and peers")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, list(colors), loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def otel_api_run(rows: list[Row], args: argparse.Namespace, given: list[str]) -> int:
    """``--otel-api``: writes ``otel_api.json`` beside the other results."""
    seconds, rounds = args.seconds or 0.2, args.reps or 40  # many short rounds: see otel_api
    started = time.time()
    compared = await otel_api.run(rows, args.sessions, seconds, rounds, CONCURRENCY)
    print(otel_api.report(compared))
    report = {
        "command": " ".join(["nox -s bench --", *given]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0]},
        "libraries": {**versions(), **otel_api.versions()},
        "settings": {"seconds_per_sample": seconds, "rounds": rounds, "sessions": args.sessions},
        "results": compared,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "otel_api.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out / 'otel_api.json'}")
    return 0


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a run under two minutes")
    parser.add_argument("--stores", help="comma-separated stores (default: all)")
    parser.add_argument("--seconds", type=float, help="seconds per sample")
    parser.add_argument("--reps", type=int, help="repetitions (at least 5)")
    parser.add_argument("--sessions", type=int, default=10_000, help="live sessions per row")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--otel-api",
        action="store_true",
        help="instead: each asyncsess row against itself built without opentelemetry "
        "importable, in adjacent samples (see benchmarks/otel_api.py)",
    )
    parser.add_argument(
        "--hot-path",
        action="store_true",
        help="instead: validate's own Python on the Redis path without I/O, beside the "
        "floor's (see benchmarks/hot_path.py)",
    )
    parser.add_argument(
        "--no-visibility",
        action="store_true",
        help="skip the near cache's revoke-to-invisible latency (benchmarks/visibility.py)",
    )
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    seconds = args.seconds or (0.25 if args.quick else 1.0)
    reps = max(5, args.reps or 5)
    rows, servers = load_rows(set(args.stores.split(",")) if args.stores else None)
    if args.hot_path:  # a diagnostic of its own: see benchmarks/hot_path.py
        await hot_path.run()
        return 0
    if args.otel_api:  # a run of its own: see benchmarks/otel_api.py
        return await otel_api_run(rows, args, given)
    results: list[dict[str, Any]] = []
    started = time.time()
    for store in dict.fromkeys(r.store for r in rows):
        results += await run_store(
            store, [r for r in rows if r.store == store], args.sessions, seconds, reps
        )
    progress(f"done in {time.time() - started:.0f} s\n")
    print(table(results))
    checked = targets(results)
    for t in checked:
        mark = "met" if t["met"] else "NOT met"
        print(f"target {t['store']:<11}{t['concurrency']:>3} tasks: {t['vs_floor']:.2f} x floor "
              f"(>= {t['target']}) {mark}  {t['row']}")  # fmt: skip
    seen: list[dict[str, Any]] = []
    if not args.no_visibility:
        for store in (s for s in visibility.STORES if any(r["store"] == s for r in results)):
            progress(f"[{store}] revoke to invisible across {visibility.WORKERS} processes")
            seen.append(await visibility.measure(store))
        if seen:
            progress("near cache visibility measured\n")
            print("\nnear cache: revoke to invisible in other processes")
            print(visibility.table(seen))
    report = {
        "command": " ".join(["nox -s bench", *(["--", *given] if given else [])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0]},
        "servers": {k: v for k, v in servers.items() if v},  # filled in by the rows that ran
        "libraries": versions(),
        "settings": {"seconds_per_sample": seconds, "repetitions": reps,
                     "sessions": args.sessions, "concurrency": list(CONCURRENCY)},
        "results": results,
        "targets": checked,
        "visibility": seen,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = "partial" if args.quick or args.stores else "latest"  # the README shows latest
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    chart(results, args.out / f"{name}.png")
    print(f"\nwrote {args.out / f'{name}.json'} and {args.out / f'{name}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
