"""Throughput of a batch on one engine vs two engines on this machine.

Run: ``.venv/bin/python bench/engines.py [--calls 400] [--concurrency 8]`` (root: it starts a
second, private dockerd). Both engines share this machine's cores, so a gain shows overlap of
engine latency (API round trips, container set-up waits), not more CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import BENCH_LABEL, ECHO_INPUT, PYTHON_IMAGE, machine, table  # noqa: E402

from executor import ContainerConfig, ContainerExecutor  # noqa: E402
from tests._dockerd import PrivateDockerd  # noqa: E402

SYSTEM = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


async def batch(engines: list[str], calls: int, concurrency: int) -> tuple[float, dict[str, int]]:
    config = ContainerConfig(PYTHON_IMAGE, labels={BENCH_LABEL: "1"}, engines=engines, timeout=120)
    async with ContainerExecutor(config) as ex:
        await ex.execute_many([ECHO_INPUT] * len(engines), concurrency=len(engines))  # warm-up
        t0 = time.perf_counter()
        results = await ex.execute_many([ECHO_INPUT] * calls, concurrency=concurrency)
        elapsed = time.perf_counter() - t0
        assert len(results) == calls
        per_engine: dict[str, Any] = {s["engine"]: s["calls"] - 1 for s in ex.engines}
    return calls / elapsed, per_engine


async def measure(calls: int, concurrency: int) -> list[list[Any]]:
    second = PrivateDockerd()
    try:
        second.start()
        second.load_image(PYTHON_IMAGE)
        one, _ = await batch([SYSTEM], calls, concurrency)
        two, split = await batch([SYSTEM, second.url], calls, concurrency)
    finally:
        second.destroy()
    return [
        ["one engine", f"{one:.1f}", "-"],
        ["two engines", f"{two:.1f}", ", ".join(f"{n}" for n in split.values())],
        ["gain", f"{two / one:.2f}x", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.calls, args.concurrency))
    print(f"machine: {machine()}")
    print(f"{args.calls} fresh-container calls at concurrency {args.concurrency}\n")
    print(table(["engines", "calls/s", "calls per engine"], rows))


if __name__ == "__main__":
    main()
