"""One container call: ContainerExecutor vs the hand-written aiodocker sequence vs the CLI.

Run: ``.venv/bin/python bench/container.py [--calls N]`` (an engine and the Python runner
image are needed: ``make engine images``). The three are interleaved round-robin in one
process so machine noise hits them alike; the table prints p50 / p95 / max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_LABEL,
    ECHO_INPUT,
    PYTHON_IMAGE,
    bench_leftovers,
    cli_call,
    handwritten_call,
    machine,
    summary,
    table,
    timed,
)

from executor import ContainerConfig, ContainerExecutor


async def measure(calls: int) -> dict[str, dict[str, float]]:
    """Latency samples of the three ways, interleaved."""
    samples: dict[str, list[float]] = {
        "docker run -i --rm": [],
        "hand-written aiodocker": [],
        "ContainerExecutor (fresh)": [],
    }
    config = ContainerConfig(PYTHON_IMAGE, labels={BENCH_LABEL: "1"}, timeout=30)
    async with aiodocker.Docker() as docker, ContainerExecutor(config) as ex:
        # Warm-up: first calls pay for API version negotiation and page cache.
        await ex.execute(ECHO_INPUT)
        await handwritten_call(docker, PYTHON_IMAGE)
        for _ in range(calls):
            samples["docker run -i --rm"].append(await timed(lambda: cli_call(PYTHON_IMAGE)))
            samples["hand-written aiodocker"].append(
                await timed(lambda: handwritten_call(docker, PYTHON_IMAGE))
            )
            samples["ContainerExecutor (fresh)"].append(await timed(lambda: ex.execute(ECHO_INPUT)))
    return {name: summary(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    results = asyncio.run(measure(args.calls))
    hand = results["hand-written aiodocker"]["p50"]
    print(f"machine: {machine()}")
    print(f"image: {PYTHON_IMAGE}, {args.calls} calls each, interleaved\n")
    rows = [
        [name, r["p50"], r["p95"], r["max"], f"{r['p50'] / hand:.2f}x"]
        for name, r in results.items()
    ]
    print(table(["way", "p50 ms", "p95 ms", "max ms", "p50 vs hand-written"], rows))
    left = bench_leftovers()
    print(f"\ncontainers left behind: {len(left)}")


if __name__ == "__main__":
    main()
