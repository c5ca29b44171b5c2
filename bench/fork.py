"""Fork mode against an unsandboxed harness, a warm pool and reuse, on one corpus, one run.

Run: ``.venv/bin/python bench/fork.py [--programs N] [--quick]`` (engine + runner images).

A corpus of small Python programs with asserts (passing, failing, raising, and a few infinite
loops spaced apart) is evaluated four ways, side by side in this process:

* the unsandboxed harness most evaluation scripts use: one ``multiprocessing.Process`` per
  program, 4 at a time, the program ``exec``'d in it, killed at the timeout;
* ``ContainerExecutor`` with a single-use warm pool (a fresh container per program);
* fork mode (``mode="fork"``: a fresh process per program in wiped containers);
* reuse mode (``mode="reuse"``: one long-lived process per container: fast, not isolated).

Every way must give every program the same verdict (``pass``, ``fail`` for an
AssertionError, ``error:<type>``, ``timeout``); the script exits 1 otherwise. Then the
per-call latency of a trivial call in fork mode for Python, Node and Go, and the throughput
of trivial calls, are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_LABEL,
    GO_IMAGE,
    NODE_IMAGE,
    PYTHON_IMAGE,
    bench_leftovers,
    machine,
    table,
)

from executor import ContainerConfig, ContainerExecutor, ExecutionTimeout, ExecutorError

TIMEOUT = 1.0
TASK = """
def execute(input):
    scope = {"__name__": "__main__"}
    try:
        exec(compile(input["code"], "<program>", "exec"), scope)
    except AssertionError:
        return "fail"
    except Exception as exc:
        return "error:" + type(exc).__name__
    return "pass"
"""
FILES = {"/app/execute.py": TASK}


def corpus(count: int, loops: int, seed: int = 7) -> list[str]:
    """``count`` small programs: arithmetic, strings, lists, dicts, with asserts."""
    rng = random.Random(seed)
    programs: list[str] = []
    loop_every = max(count // max(loops, 1), 1)
    for i in range(count):
        if loops and i % loop_every == loop_every // 2 and len(programs) // loop_every < loops:
            programs.append("while True:\n    pass\n")
            continue
        a, b = rng.randint(1, 1000), rng.randint(1, 1000)
        kind = rng.choice(["pass", "pass", "pass", "fail", "raise", "raise2"])
        body = [
            "def add(x, y):\n    return x + y\n",
            f"values = [{a}, {b}, {a * b % 97}]\n",
            "total = sum(values)\n",
            "words = ' '.join(str(v) for v in sorted(values)).split()\n",
            "counts = {w: len(w) for w in words}\n",
        ]
        if kind == "pass":
            body.append(f"assert add({a}, {b}) == {a + b}\nassert len(words) == 3\n")
        elif kind == "fail":
            body.append(f"assert add({a}, {b}) == {a + b + 1}, 'off by one'\n")
        elif kind == "raise":
            body.append(f"x = values[{rng.randint(3, 9)}]\n")
        else:
            body.append("y = counts['missing']\n")
        programs.append("".join(body))
    return programs


# -- the unsandboxed harness -------------------------------------------------------------------


def _child(code: str, conn: Any) -> None:
    scope = {"__name__": "__main__"}
    try:
        exec(compile(code, "<program>", "exec"), scope)
        verdict = "pass"
    except AssertionError:
        verdict = "fail"
    except Exception as exc:
        verdict = "error:" + type(exc).__name__
    conn.send(verdict)
    conn.close()


def harness_one(code: str) -> str:
    parent, child = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_child, args=(code, child))
    process.start()
    child.close()
    verdict = "timeout"
    if parent.poll(TIMEOUT):
        verdict = parent.recv()
    process.join(0.1)
    if process.is_alive():
        process.kill()
        process.join()
    return verdict


async def harness(programs: list[str], workers: int = 4) -> tuple[list[str], float]:
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        verdicts = await asyncio.gather(
            *(loop.run_in_executor(pool, harness_one, code) for code in programs)
        )
    return list(verdicts), time.perf_counter() - started


# -- the container ways ------------------------------------------------------------------------


def verdict_of(result: Any) -> str:
    if isinstance(result, ExecutionTimeout):
        return "timeout"
    if isinstance(result, ExecutorError):
        return f"executor:{result.code}"
    return str(result)


async def through(
    settings: dict[str, Any], programs: list[str], concurrency: int
) -> tuple[list[str], float]:
    config = ContainerConfig(
        PYTHON_IMAGE,
        files=FILES,
        labels={BENCH_LABEL: "1"},
        timeout=TIMEOUT,
        start_timeout=600,
        **settings,
    )
    async with ContainerExecutor(config) as ex:
        await ex.execute({"code": "pass"})  # image derived, containers started
        if ex._pool is not None:
            deadline = time.monotonic() + 60
            while ex._pool.idle < ex._pool.size and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        started = time.perf_counter()
        results = await ex.execute_many(
            [{"code": code} for code in programs], concurrency=concurrency, return_exceptions=True
        )
        elapsed = time.perf_counter() - started
    return [verdict_of(r) for r in results], elapsed


async def trivial_latency(image: str, calls: int) -> tuple[float, float, float]:
    """Fork-mode trivial calls one at a time: p50 and p95 in ms, and calls/s back to back."""
    config = ContainerConfig(
        image, labels={BENCH_LABEL: "1"}, mode="fork", containers=1, timeout=30
    )
    async with ContainerExecutor(config) as ex:
        for _ in range(5):
            await ex.execute({"n": 0})
        samples = []
        for i in range(calls):
            await asyncio.sleep(0.02)  # spaced out: the runner is clean and ready
            t0 = time.perf_counter()
            await ex.execute({"n": i})
            samples.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(calls):
            await ex.execute({"n": i})
        rate = calls / (time.perf_counter() - t0)
    samples.sort()
    return (
        statistics.median(samples) * 1000,
        samples[int(0.95 * len(samples))] * 1000,
        rate,
    )


async def main(count: int, loops: int, quick: bool) -> int:
    programs = corpus(count, loops)
    print(f"machine: {machine()}")
    print(
        f"corpus: {len(programs)} programs ({sum('while True' in p for p in programs)} infinite "
        f"loops), timeout {TIMEOUT:g} s per program\n"
    )
    ways: dict[str, tuple[list[str], float]] = {}
    ways["unsandboxed harness (multiprocessing, 4 workers)"] = await harness(programs)
    ways["single-use warm pool (containers=4)"] = await through(
        {"mode": "pool", "containers": 4}, programs if not quick else programs[:60], 4
    )
    ways["fork mode (mode='fork', containers=4)"] = await through(
        {"mode": "fork", "containers": 4, "max_uses": 100_000}, programs, 8
    )
    ways["mode='reuse' (containers=4)"] = await through(
        {"mode": "reuse", "containers": 4, "max_uses": 100_000}, programs, 8
    )
    reference = ways["unsandboxed harness (multiprocessing, 4 workers)"][0]
    rows = []
    base_rate = len(programs) / ways["unsandboxed harness (multiprocessing, 4 workers)"][1]
    pool_verdicts, pool_time = ways["single-use warm pool (containers=4)"]
    pool_rate = len(pool_verdicts) / pool_time
    disagreements = 0
    for name, (verdicts, elapsed) in ways.items():
        rate = len(verdicts) / elapsed
        wrong = sum(v != r for v, r in zip(verdicts, reference, strict=False))
        disagreements += wrong
        rows.append(
            [
                name,
                len(verdicts),
                f"{elapsed:.2f}",
                f"{rate:.1f}",
                f"{rate / base_rate:.2f}x",
                f"{rate / pool_rate:.1f}x",
                wrong,
            ]
        )
    print(
        table(
            [
                "way",
                "programs",
                "seconds",
                "programs/s",
                "vs harness",
                "vs warm pool",
                "verdicts differing",
            ],
            rows,
        )
    )
    counts: dict[str, int] = {}
    for verdict in reference:
        counts[verdict] = counts.get(verdict, 0) + 1
    print(f"\nverdicts: {dict(sorted(counts.items()))}\n")
    lat_rows = []
    for language, image in (("python", PYTHON_IMAGE), ("node", NODE_IMAGE), ("go", GO_IMAGE)):
        p50, p95, rate = await trivial_latency(image, 50 if quick else 300)
        lat_rows.append([language, f"{p50:.2f}", f"{p95:.2f}", f"{rate:.0f}"])
    print("fork mode, one trivial call at a time (one container):\n")
    print(table(["runner", "p50 ms", "p95 ms", "calls/s back to back"], lat_rows))
    print(f"\ncontainers left behind: {len(bench_leftovers())}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--programs", type=int, default=400)
    parser.add_argument("--loops", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.programs, args.loops, args.quick)))
