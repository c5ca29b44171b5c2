"""Node fork mode with and without the spares' start-up snapshot, side by side.

Run: ``.venv/bin/python bench/fork_node.py [--calls N] [--rounds R]`` (engine + images): the
Node runner image (``EXECUTOR_NODE_IMAGE``) with ``EXECUTOR_NODE_SNAPSHOT=0``, then as it
comes; or ``--before IMAGE --after IMAGE``: two images, each as it comes. The echo task ships
with ``files=``. Per row, in alternated rounds:
trivial-call latency on one container, one call at a time, with a gap of 5 ms and of 100 ms
between an answer and the next call (p50, p95); calls/s with 4 containers at concurrency 8
and the containers' CPU per call (their cgroups); and the memory of the waiting spares (RSS
and PSS, read on the host from ``/proc/PID/smaps_rollup`` of the container's node processes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_LABEL, STOCK_NODE_IMAGE, bench_leftovers, machine, table
from fork import container_cpu, container_ids

from executor import ContainerConfig, ContainerExecutor

ECHO = {"/app/execute.mjs": "export function executeFunction(input) { return input; }\n"}


def spare_memory(cid: str) -> tuple[float, float, int] | None:
    """(RSS MiB, PSS MiB) summed over the container's node processes (its waiting spares), and
    their count; None when no spare has started within 10 s."""
    pids: list[int] = []
    for _ in range(100):
        out = subprocess.run(
            ["docker", "top", cid, "-o", "pid"], capture_output=True, text=True, check=False
        ).stdout.split()[1:]
        pids = []
        for pid in (int(p) for p in out if p.isdigit()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "node":
                    pids.append(pid)
            except OSError:
                pass
        if pids:
            break
        time.sleep(0.1)
    if not pids:
        return None
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "Rss":
                    rss += int(value.split()[0])
                elif key == "Pss":
                    pss += int(value.split()[0])
        except OSError:
            return None
    return rss / 1024, pss / 1024, len(pids)


async def latency(image: str, env: dict[str, str], calls: int, gap: float) -> list[float]:
    config = ContainerConfig(
        image,
        mode="fork",
        files=ECHO,
        env=env,
        containers=1,
        labels={BENCH_LABEL: "1"},
        timeout=30,
    )
    async with ContainerExecutor(config) as ex:
        for _ in range(3):
            await ex.execute({"n": 0})
        took = []
        for i in range(calls):
            await asyncio.sleep(gap)
            t0 = time.perf_counter()
            await ex.execute({"n": i})
            took.append(time.perf_counter() - t0)
    return took


async def throughput(
    image: str, env: dict[str, str], calls: int
) -> tuple[float, float | None, Any]:
    label = uuid.uuid4().hex[:12]
    config = ContainerConfig(
        image,
        mode="fork",
        files=ECHO,
        env=env,
        containers=4,
        max_uses=100_000,
        timeout=30,
        labels={BENCH_LABEL: "1", "executor.bench-way": label},
    )
    async with ContainerExecutor(config) as ex:
        await ex.execute_many([{"n": i} for i in range(16)], concurrency=8)
        ids = container_ids(f"executor.bench-way={label}")
        cpu0 = container_cpu(ids)
        t0 = time.perf_counter()
        await ex.execute_many([{"n": i} for i in range(calls)], concurrency=8)
        elapsed = time.perf_counter() - t0
        cpu1 = container_cpu(ids)
        await asyncio.sleep(1.0)  # every container idle, its spares loaded
        memory = spare_memory(ids[0]) if ids else None
    cpu = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / calls * 1000
    return calls / elapsed, cpu, memory


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    images: dict[str, tuple[str, dict[str, str]]]
    if args.before or args.after:
        before, after = args.before or STOCK_NODE_IMAGE, args.after or STOCK_NODE_IMAGE
        images = {f"before: {before}": (before, {}), f"after: {after}": (after, {})}
    else:
        images = {
            f"{STOCK_NODE_IMAGE}, EXECUTOR_NODE_SNAPSHOT=0": (
                STOCK_NODE_IMAGE,
                {"EXECUTOR_NODE_SNAPSHOT": "0"},
            ),
            f"{STOCK_NODE_IMAGE} (snapshot)": (STOCK_NODE_IMAGE, {}),
        }
    lat: dict[str, dict[float, list[float]]] = {k: {0.005: [], 0.1: []} for k in images}
    rate: dict[str, list[float]] = {k: [] for k in images}
    cpu: dict[str, list[float]] = {k: [] for k in images}
    mem: dict[str, Any] = {}
    for _ in range(args.rounds):
        for key, (image, env) in images.items():
            for gap in lat[key]:
                lat[key][gap] += await latency(image, env, args.calls, gap)
            per_s, per_call, memory = await throughput(image, env, args.calls * 2)
            rate[key].append(per_s)
            if per_call is not None:
                cpu[key].append(per_call)
            mem[key] = memory
    rows = []
    for key in images:
        memory = mem[key]
        spares = "-" if memory is None else f"{memory[2]}: {memory[0]:.0f} / {memory[1]:.0f}"
        rows.append(
            [
                key,
                f"{pct(lat[key][0.005], 0.5):.1f} / {pct(lat[key][0.005], 0.95):.1f}",
                f"{pct(lat[key][0.1], 0.5):.1f} / {pct(lat[key][0.1], 0.95):.1f}",
                f"{statistics.median(rate[key]):.1f}",
                f"{statistics.median(cpu[key]):.1f}" if cpu[key] else "-",
                spares,
            ]
        )
    headers = ["node fork mode", "p50 / p95 ms, 5 ms apart", "p50 / p95 ms, 100 ms apart"]
    headers += ["calls/s, 4 containers, conc. 8", "container CPU ms/call"]
    headers += ["spares: RSS / PSS MiB (all)"]
    print(table(headers, rows))
    print(f"\ncontainers left behind: {len(bench_leftovers())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="an image to compare (as it comes)")
    parser.add_argument("--after", help="the other image")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
