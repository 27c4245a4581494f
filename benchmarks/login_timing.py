"""Does a login reveal whether a username exists? Time it.

Prints the median time of ``Accounts.authenticate`` for an unknown username
and for a known username with a wrong password (memory accounts, so only the
hashing work differs), alternating the two so that drift hits both alike,
and their ratio, which should be close to 1::

    python benchmarks/login_timing.py [--repetitions 200] [--time-cost 2] [--memory-cost 19456]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from importlib.metadata import version

import anyio

from asyncsess.accounts import Accounts, PasswordHasher


async def measure(repetitions: int, hasher: PasswordHasher) -> tuple[list[float], list[float]]:
    """Return the durations (s) of unknown-user and wrong-password authentications."""
    unknown: list[float] = []
    wrong: list[float] = []
    async with Accounts("memory://", hasher=hasher) as accounts:
        await accounts.create_user("alice", "the right password")
        cases = [("nobody", "a wrong password", unknown), ("alice", "a wrong password", wrong)]
        for _ in range(3):  # warm up: threads started, dummy hash made, caches filled
            for name, password, _times in cases:
                await accounts.authenticate(name, password)
        for i in range(repetitions):
            for name, password, times in cases if i % 2 else cases[::-1]:
                start = time.perf_counter()
                assert await accounts.authenticate(name, password) is None
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
    args = parser.parse_args()
    hasher = PasswordHasher(
        time_cost=args.time_cost, memory_cost=args.memory_cost, parallelism=args.parallelism
    )
    unknown, wrong = anyio.run(measure, args.repetitions, hasher)
    u, w = statistics.median(unknown), statistics.median(wrong)
    print(
        f"python {platform.python_version()}, argon2-cffi {version('argon2-cffi')}, "
        f"{hasher!r}, {args.repetitions} repetitions each"
    )
    print(f"unknown user       median {u * 1e3:8.2f} ms  (p90 {_p90(unknown) * 1e3:.2f} ms)")
    print(f"wrong password     median {w * 1e3:8.2f} ms  (p90 {_p90(wrong) * 1e3:.2f} ms)")
    print(f"ratio unknown/wrong: {u / w:.3f}")


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


if __name__ == "__main__":
    main()
