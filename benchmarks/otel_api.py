"""``--otel-api``: what opentelemetry-api, installed and with no SDK configured, costs a row.

    python -m benchmarks.bench --otel-api [--stores memory,sqlite] [--seconds S] [--reps R]

Every asyncsess row of the stores run gets a twin, "<row> [no opentelemetry]", whose
manager is built while ``opentelemetry`` cannot be imported (its modules hidden and
refused by an import hook for the length of the row's set-up), so its telemetry is
off exactly as on an installation without the ``otel`` extra. The row itself runs as
installed: the API importable, the global providers the API's own proxies (checked
before anything is measured: a configured SDK would make this a different question).

Row and twin are measured in adjacent samples, the order alternating (AB, BA, ...),
``rounds`` times at each concurrency, so that what the machine does meanwhile (other
processes on a shared VM move a row's figures by 20% from one second to the next)
weighs on both alike. The ratio reported is, over each AB round and the BA round
after it, the geometric mean of their ops/s ratios (and of client CPU per op), the
median of those, against 5% (:func:`_paired`).
"""

from __future__ import annotations

import importlib.metadata
import math
import statistics
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from .harness import Prepared, Row, Sample, check_valid, measure


def progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


SUFFIX = " [no opentelemetry]"
LIMIT = 0.05  # issue 15: every row within 5% of the same row without the API


class _Refuse(MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.split(".")[0] == "opentelemetry":
            raise ImportError(f"{name} is hidden by the benchmark's --otel-api twin")
        return None


@contextmanager
def opentelemetry_hidden() -> Iterator[None]:
    """Make ``import opentelemetry...`` fail inside the block; restore the modules after."""
    hidden = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "opentelemetry"}
    for name in hidden:
        del sys.modules[name]
    finder = _Refuse()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(hidden)


def _telemetry(prepared: Prepared) -> Any:
    """The row's manager's telemetry link (the op is its bound ``validate``)."""
    return prepared.op.__self__._observer.telemetry  # type: ignore[attr-defined]


def _twin(row: Row) -> Row:
    @asynccontextmanager
    async def prepare(n: int) -> AsyncIterator[Prepared]:
        async with AsyncExitStack() as stack:
            with opentelemetry_hidden():
                prepared = await stack.enter_async_context(row.prepare(n))
            if _telemetry(prepared) is not None:
                raise AssertionError(f"{row.name}{SUFFIX}: built with telemetry on")
            yield prepared

    return Row(row.store, row.name + SUFFIX, row.kind, prepare)


def _as_installed(row: Row) -> Row:
    @asynccontextmanager
    async def prepare(n: int) -> AsyncIterator[Prepared]:
        async with row.prepare(n) as prepared:
            telemetry = _telemetry(prepared)
            if telemetry is None or telemetry.live:
                raise AssertionError(
                    f"{row.name}: expected opentelemetry-api importable and no SDK configured"
                )
            yield prepared

    return Row(row.store, row.name, row.kind, prepare)


def versions() -> dict[str, str]:
    """The OpenTelemetry packages installed (the row as installed imports the API)."""
    found = {}
    for name in ("opentelemetry-api", "opentelemetry-sdk"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _no_sdk() -> None:
    from opentelemetry import metrics, trace  # the API must be there, with no SDK behind it

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        if type(provider).__module__.split(".")[1] not in ("trace", "metrics"):
            raise SystemExit(f"--otel-api: an SDK provider is configured ({provider!r})")


async def run(
    rows: list[Row], sessions: int, seconds: float, rounds: int, concurrency: Sequence[int]
) -> list[dict[str, Any]]:
    """Each asyncsess row against its twin, in adjacent samples (see the module docstring)."""
    _no_sdk()
    out = []
    for row in [r for r in rows if r.kind == "asyncsess"]:
        async with AsyncExitStack() as stack:
            progress(f"[{row.store}] preparing {row.name} and its twin ({sessions} sessions each)")
            pair = [
                await stack.enter_async_context(_as_installed(row).prepare(sessions)),
                await stack.enter_async_context(_twin(row).prepare(sessions)),
            ]
            for prepared in pair:
                await check_valid(prepared)
            for tasks in concurrency:
                samples: list[tuple[Sample, Sample]] = []
                for i in range(rounds):
                    progress(f"[{row.store}] {row.name}, {tasks} tasks: round {i + 1}/{rounds}")
                    order = pair if i % 2 == 0 else pair[::-1]
                    first, second = [await measure(p, tasks, seconds) for p in order]
                    if first.ops and second.ops:  # a sample too short to finish one is no result
                        samples.append((first, second) if i % 2 == 0 else (second, first))
                out.append(_compared(row, tasks, samples))
                progress(report(out[-1:]).splitlines()[-1])
    return out


def _paired(ratios: list[float]) -> float:
    """The median over consecutive AB/BA rounds of their ratios' geometric mean.

    Whichever sample runs second in a round may be systematically faster or slower
    (a WAL checkpoint, a cache warmed by the first); over an AB round and the BA round
    after it that effect cancels, where a plain median of bimodal ratios would not.
    """
    pairs = [math.sqrt(x * y) for x, y in zip(ratios[::2], ratios[1::2], strict=False)]
    return statistics.median(pairs or ratios)


def _compared(row: Row, tasks: int, samples: list[tuple[Sample, Sample]]) -> dict[str, Any]:
    def cpu(sample: Sample) -> float:
        return sample.cpu_seconds / max(sample.ops, 1)

    ratio = _paired([a.ops_per_s / b.ops_per_s for a, b in samples])
    return {
        "store": row.store,
        "row": row.name,
        "concurrency": tasks,
        "ops_per_s_with_api": statistics.median(a.ops_per_s for a, _ in samples),
        "ops_per_s_without": statistics.median(b.ops_per_s for _, b in samples),
        "ratio": ratio,
        "cpu_ratio": _paired([cpu(a) / cpu(b) for a, b in samples]),
        "rounds": len(samples),
        "round_ratios": [round(a.ops_per_s / b.ops_per_s, 4) for a, b in samples],
        "within_5_percent": ratio >= 1 - LIMIT,
    }


def report(compared: list[dict[str, Any]]) -> str:
    """The table: each row as installed over its twin without the API (paired medians)."""
    head = f"{'store':<12}{'row':<40}{'tasks':>6}{'with API':>11}{'without':>11}"
    head += f"{'ratio':>8}{'CPU/op':>8}"
    lines = [head, "-" * len(head)]
    for c in compared:
        mark = "" if c["within_5_percent"] else "  NOT within 5%"
        lines.append(
            f"{c['store']:<12}{c['row'][:39]:<40}{c['concurrency']:>6}"
            f"{c['ops_per_s_with_api']:>11,.0f}{c['ops_per_s_without']:>11,.0f}"
            f"{c['ratio']:>8.3f}{c['cpu_ratio']:>8.3f}{mark}"
        )
    return "\n".join(lines)
