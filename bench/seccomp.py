"""The seccomp profile's cost: ``seccomp="engine"`` vs the library's ``"default"``, side by side.

Run: ``.venv/bin/python bench/seccomp.py [--calls N]`` (an engine and the Python runner image are
needed). For each mode (fresh container, warm pool, fork mode) one executor per setting; their
calls alternate so machine noise hits both alike. Pool calls start with a pooled container
ready (a pause lets the pool refill). The table prints p50 / p95 / max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_LABEL,
    ECHO_INPUT,
    PYTHON_IMAGE,
    bench_leftovers,
    machine,
    summary,
    table,
    timed,
)

from executor import ContainerConfig, ContainerExecutor

MODES: dict[str, dict[str, Any]] = {
    "fresh container": {},
    "warm pool (containers=1)": {"mode": "pool", "containers": 1, "prewarm": True},
    "fork mode": {"mode": "fork", "containers": 1},
}
SETTINGS = ("engine", "default")


async def measure(calls: int) -> dict[tuple[str, str], dict[str, float]]:
    """Latency samples per (mode, seccomp setting), the two settings alternating."""
    results: dict[tuple[str, str], dict[str, float]] = {}
    for mode, extra in MODES.items():
        executors = {
            setting: ContainerExecutor[Any, Any](
                ContainerConfig(
                    PYTHON_IMAGE, labels={BENCH_LABEL: "1"}, timeout=30, seccomp=setting, **extra
                )
            )
            for setting in SETTINGS
        }
        samples: dict[str, list[float]] = {setting: [] for setting in SETTINGS}
        try:
            for ex in executors.values():
                await ex.__aenter__()
                await ex.execute(ECHO_INPUT)  # warm-up: image check, pool fill, first fork
            for i in range(calls):
                order = SETTINGS if i % 2 == 0 else SETTINGS[::-1]
                for setting in order:
                    if extra.get("mode") == "pool":
                        await asyncio.sleep(1.5)  # the pool refills (a loaded machine)
                    ex = executors[setting]
                    samples[setting].append(await timed(lambda ex=ex: ex.execute(ECHO_INPUT)))
        finally:
            for ex in executors.values():
                await ex.aclose()
        for setting in SETTINGS:
            results[(mode, setting)] = summary(samples[setting])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    results = asyncio.run(measure(args.calls))
    print(f"machine: {machine()}")
    print(f"image: {PYTHON_IMAGE}, {args.calls} calls per row, the two settings alternating\n")
    rows = []
    for (mode, setting), r in results.items():
        base = results[(mode, "engine")]["p50"]
        rows.append([mode, setting, r["p50"], r["p95"], r["max"], f"{r['p50'] / base:.2f}x"])
    print(table(["mode", "seccomp", "p50 ms", "p95 ms", "max ms", "p50 vs engine"], rows))
    print(f"\ncontainers left behind: {len(bench_leftovers())}")


if __name__ == "__main__":
    main()
