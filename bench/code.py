"""What code strings, files back and streaming cost per call, next to the plain typed call.

Run: ``.venv/bin/python bench/code.py [--calls N]`` (engine + runner images; the images may
be pointed elsewhere with ``EXECUTOR_PYTHON_IMAGE``/``EXECUTOR_NODE_IMAGE``).

Rows, each in fork mode (``mode="fork"``: a fresh process per call) and reuse mode
(``mode="reuse"``: one long-lived process), one warm container, calls one after another:

* a typed call of the image's echo task (``ContainerExecutor``), the baseline;
* the same with ``collect="/tmp/out"``, the task writing three small files (files back);
* the same typed call through ``stream()`` instead of ``run()``;
* ``CodeExecutor`` running ``print(1)`` (Python), ``echo 1`` (bash), ``console.log(1)`` (Node):
  the code runner writes the program, starts an interpreter and collects its files;
* ``CodeExecutor.stream`` of the Python program.

p50 and p95 in milliseconds; the difference to the baseline of its mode is the feature's cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_LABEL, NODE_IMAGE, PYTHON_IMAGE, bench_leftovers, machine, summary, table

from executor import CodeExecutor, CodeRun, ContainerConfig, ContainerExecutor, Executor

WRITER = """
def execute(input):
    for i in range(3):
        with open(f"/tmp/out/file{i}.txt", "w") as fh:
            fh.write("x" * 100)
    return input
"""
LABELS = {BENCH_LABEL: "1"}


async def drain_stream(ex: Executor[Any, Any], value: Any) -> None:
    async with ex.stream(value) as events:
        async for _ in events:
            pass


async def measure(ex: Executor[Any, Any], value: Any, calls: int, *, stream: bool) -> list[float]:
    samples = []
    for n in range(calls + 10):
        t0 = time.perf_counter()
        if stream:
            await drain_stream(ex, value)
        else:
            await ex.run(value)
        if n >= 10:  # the first calls warm the container and the interpreter's caches
            samples.append(time.perf_counter() - t0)
    return samples


async def main(calls: int) -> None:
    rows: list[list[Any]] = []
    echo = {"values": [1.0, 2.0, 3.0]}
    for name in ("fork", "reuse"):
        base = {"mode": name, "containers": 1, "labels": LABELS, "timeout": 10}
        cases: list[tuple[str, Executor[Any, Any], Any, bool]] = [
            (
                "typed call (echo)",
                ContainerExecutor(ContainerConfig(PYTHON_IMAGE, **base)),
                echo,
                False,
            ),
            (
                "typed call, 3 files back (collect)",
                ContainerExecutor(
                    ContainerConfig(
                        PYTHON_IMAGE, files={"/app/execute.py": WRITER}, collect="/tmp/out", **base
                    )
                ),
                echo,
                False,
            ),
            (
                "typed call through stream()",
                ContainerExecutor(ContainerConfig(PYTHON_IMAGE, **base)),
                echo,
                True,
            ),
            (
                "code run: Python print(1)",
                CodeExecutor("python", ContainerConfig(PYTHON_IMAGE, **base)),
                CodeRun("print(1)"),
                False,
            ),
            (
                "code run: bash echo 1",
                CodeExecutor("bash", ContainerConfig(PYTHON_IMAGE, **base)),
                CodeRun("echo 1"),
                False,
            ),
            (
                "code run: Node console.log(1)",
                CodeExecutor("node", ContainerConfig(NODE_IMAGE, **base)),
                CodeRun("console.log(1)"),
                False,
            ),
            (
                "code run: Python, through stream()",
                CodeExecutor("python", ContainerConfig(PYTHON_IMAGE, **base)),
                CodeRun("print(1)"),
                True,
            ),
        ]
        baseline = None
        for label, ex, value, stream in cases:
            async with ex:
                stats = summary(await measure(ex, value, calls, stream=stream))
            if baseline is None:
                baseline = stats["p50"]
            rows.append(
                [name, label, stats["p50"], stats["p95"], f"{stats['p50'] - baseline:+.2f}"]
            )
            print(f"{name:5} {label:38} p50 {stats['p50']:8.2f} ms", file=sys.stderr)
    print(f"\n{machine()}; {calls} calls per row\n")
    print(table(["mode", "call", "p50 ms", "p95 ms", "p50 vs typed"], rows))
    left = bench_leftovers()
    if left:
        raise SystemExit(f"containers left behind: {left}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200)
    anyio.run(main, parser.parse_args().calls)
