"""Under load: throughput and latency with and without admission control, side by side.

Run: ``.venv/bin/python bench/load.py [--calls N] [--quick]`` (engine + Python runner image).

For fresh containers and a warm pool, a batch of trivial calls runs at concurrency 4, 8, 24
and 64, once with admission control off (``max_starting`` huge: every call starts its
container at once, the engine thrashes) and once as shipped (``max_starting`` = the engine's
CPU count). Then, to justify that default, fresh containers at concurrency 24 with
``max_starting`` 1, 2, 4 and 8. Everything runs in this one process; the tables print
calls/s, p50 and p95 latency in ms, and how many calls failed (with their codes).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_LABEL, PYTHON_IMAGE, bench_leftovers, machine, table

from executor import ContainerConfig, ContainerExecutor, ExecutorError

UNLIMITED = 10_000
CONCURRENCY = (4, 8, 24, 64)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def batch(settings: dict[str, Any], calls: int, concurrency: int) -> dict[str, Any]:
    """Run ``calls`` trivial calls at ``concurrency``; throughput, latency and failures."""
    config = ContainerConfig(
        PYTHON_IMAGE, labels={BENCH_LABEL: "1"}, timeout=60, start_timeout=600, **settings
    )
    latencies: list[float] = []
    failures: collections.Counter[str] = collections.Counter()
    async with ContainerExecutor(config) as ex:
        if settings.get("mode") == "pool":
            await ex.execute({"warm": True})
        limiter = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with limiter:
                t0 = time.perf_counter()
                try:
                    await ex.execute({"i": i})
                except ExecutorError as exc:
                    failures[exc.code] += 1
                    return
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        elapsed = time.perf_counter() - started
    return {
        "rate": calls / elapsed,
        "p50": percentile(latencies, 0.5) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "failed": ", ".join(f"{n} {code}" for code, n in failures.items()) or "0",
    }


async def main(calls: int, quick: bool) -> None:
    concurrencies = (4, 24) if quick else CONCURRENCY
    modes = {
        "fresh": {},
        "warm pool (containers=8)": {"mode": "pool", "containers": 8},
    }
    print(f"machine: {machine()}")
    print(f"image: {PYTHON_IMAGE}; {calls} trivial calls per row\n")
    rows = []
    for mode, settings in modes.items():
        for label, limit in (("off", UNLIMITED), ("on (default)", None)):
            for concurrency in concurrencies:
                result = await batch({**settings, "max_starting": limit}, calls, concurrency)
                rows.append(
                    [
                        mode,
                        label,
                        concurrency,
                        f"{result['rate']:.1f}",
                        f"{result['p50']:.0f}",
                        f"{result['p95']:.0f}",
                        result["failed"],
                    ]
                )
                print(" | ".join(str(c) for c in rows[-1]), file=sys.stderr, flush=True)  # progress
    print()
    print(
        table(["mode", "admission", "concurrency", "calls/s", "p50 ms", "p95 ms", "failed"], rows)
    )
    print("\nfresh containers at concurrency 24 by max_starting (the default's justification):\n")
    sweep = []
    for limit in (1, 2, 4, 8) if not quick else (1, 2, 8):
        result = await batch({"max_starting": limit}, calls, 24)
        sweep.append(
            [limit, f"{result['rate']:.1f}", f"{result['p50']:.0f}", f"{result['p95']:.0f}"]
        )
    print(table(["max_starting", "calls/s", "p50 ms", "p95 ms"], sweep))
    print(f"\ncontainers left behind: {len(bench_leftovers())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=96)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.quick))
