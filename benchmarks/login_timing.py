"""Does a login reveal whether a username exists? Time it.

Prints the median time of ``Accounts.authenticate`` for an unknown username
and for a known username with a wrong password (memory accounts, so only the
hashing work differs), alternating the two so that drift hits both alike,
and their ratio, which should be close to 1::

    python benchmarks/login_timing.py [--repetitions 200] [--time-cost 2] [--memory-cost 19456]

``--old-hashes`` stores the users' hashes with those parameters, then raises
them (``--raised-time-cost``, ``--raised-memory-cost``; default: one more
pass and twice the memory) before measuring, as after an upgrade while old
hashes remain: the unknown user must still cost what the stored hashes cost.
Throttling is off here (:meth:`LoginLimits.off`): the benchmark guesses far
more than a real limit allows.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from importlib.metadata import version

import anyio

from asyncsess.accounts import Accounts, LoginLimits, PasswordHasher

USERS = 8


async def measure(
    repetitions: int, hasher: PasswordHasher, raised: PasswordHasher | None
) -> tuple[list[float], list[float]]:
    """Return the durations (s) of unknown-user and wrong-password authentications."""
    unknown: list[float] = []
    wrong: list[float] = []
    async with Accounts("memory://", hasher=hasher, limits=LoginLimits.off()) as accounts:
        for i in range(USERS):
            await accounts.create_user(f"user{i}", "the right password")
        if raised is not None:
            accounts.hasher = raised  # the stored hashes keep the old parameters
        for i in range(3):  # warm up: threads started, dummy hash made, caches filled
            await accounts.authenticate(f"user{i}", "a wrong password")
            await accounts.authenticate(f"nobody{i}", "a wrong password")
        for i in range(repetitions):
            cases = [(f"nobody{i}", unknown), (f"user{i % USERS}", wrong)]
            for name, times in cases if i % 2 else cases[::-1]:
                start = time.perf_counter()
                assert await accounts.authenticate(name, "a wrong password") is None
                times.append(time.perf_counter() - start)
    return unknown, wrong


def main() -> None:
    """Parse the options, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=200)
    defaults = PasswordHasher().parameters
    parser.add_argument("--time-cost", type=int, default=defaults["time_cost"])
    parser.add_argument("--memory-cost", type=int, default=defaults["memory_cost"], help="KiB")
    parser.add_argument("--parallelism", type=int, default=defaults["parallelism"])
    parser.add_argument(
        "--old-hashes", action="store_true", help="store hashes, then raise the parameters"
    )
    parser.add_argument("--raised-time-cost", type=int, help="default: --time-cost + 1")
    parser.add_argument("--raised-memory-cost", type=int, help="KiB; default: 2 * --memory-cost")
    args = parser.parse_args()
    hasher = PasswordHasher(
        time_cost=args.time_cost, memory_cost=args.memory_cost, parallelism=args.parallelism
    )
    raised = None
    if args.old_hashes:
        raised = PasswordHasher(
            time_cost=args.raised_time_cost or args.time_cost + 1,
            memory_cost=args.raised_memory_cost or 2 * args.memory_cost,
            parallelism=args.parallelism,
        )
    unknown, wrong = anyio.run(measure, args.repetitions, hasher, raised)
    u, w = statistics.median(unknown), statistics.median(wrong)
    print(
        f"python {platform.python_version()}, argon2-cffi {version('argon2-cffi')}, "
        f"{args.repetitions} repetitions each"
    )
    print(f"stored hashes: {hasher!r}")
    if raised is not None:
        print(f"raised to:     {raised!r} (no user has logged in since)")
    print(f"unknown user       median {u * 1e3:8.2f} ms  (p90 {_p90(unknown) * 1e3:.2f} ms)")
    print(f"wrong password     median {w * 1e3:8.2f} ms  (p90 {_p90(wrong) * 1e3:.2f} ms)")
    print(f"ratio unknown/wrong: {u / w:.3f}")


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


if __name__ == "__main__":
    main()
