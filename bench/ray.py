"""RayExecutor against a direct ContainerExecutor: the cost per call, ``map`` throughput with
and without chunking, over the data channel and as Ray calls (``data_channel=False``), one
node against two.

Run: ``.venv/bin/python bench/ray.py [--calls 2000] [--latency-calls 200] [--rounds 3]``
(root, the ``ray`` extra installed: it starts a Ray head node on this machine, then a worker
node whose ``DOCKER_HOST`` is a private dockerd). Reuse and fork modes (the modes where the
container costs least) with a trivial task, so what is measured is the path around the
container, not the container; each row is compared with the direct executor of its mode.
Direct and Ray rows are interleaved round by round so machine noise hits them alike; each
throughput is the median of the rounds.

Both nodes share this machine's 2 cores: a second node adds an engine and processes, not CPU,
so "two nodes" shows the cost of spreading, not the gain a second machine would bring.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# This file is named ray.py: with its directory on the path, `import ray` would import it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench._common import (  # noqa: E402
    BENCH_LABEL,
    ECHO_INPUT,
    PYTHON_IMAGE,
    machine,
    summary,
    table,
)
from executor import ContainerConfig, ContainerExecutor  # noqa: E402
from tests._dockerd import PrivateDockerd  # noqa: E402
from tests.ray._cluster import LocalRayCluster  # noqa: E402

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


TICK = os.sysconf("SC_CLK_TCK")


def make_config(workers: int, mode: str = "reuse") -> ContainerConfig:
    return ContainerConfig(
        PYTHON_IMAGE,
        labels={BENCH_LABEL: "1"},
        mode=mode,
        containers=workers,
        prewarm=True,
        on_empty="wait",  # exactly `workers` containers, however many calls are in flight
        max_uses=1_000_000,
        timeout=60,
    )


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (load-independent cost)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def actor_pids(ex: Any) -> list[int]:
    return [n["pid"] for n in getattr(ex, "nodes", ()) if n["pid"]]


async def latency(ex: Any, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await ex.execute(ECHO_INPUT)
        samples.append(time.perf_counter() - t0)
    return samples


class Row:
    """One throughput row: calls/s per round and CPU ms per call of the caller and actors."""

    def __init__(
        self, name: str, ex: Any, concurrency: int | None, calls: int, mode: str = "reuse"
    ) -> None:
        self.name, self.ex, self.concurrency, self.calls = name, ex, concurrency, calls
        self.mode = mode
        self.rates: list[float] = []
        self.driver_cpu: list[float] = []
        self.actor_cpu: list[float] = []
        self.has_actors = False

    async def round(self) -> None:
        kwargs = {} if self.concurrency is None else {"concurrency": self.concurrency}
        actors = actor_pids(self.ex)
        self.has_actors = bool(actors)
        me, them = cpu_seconds([os.getpid()]), cpu_seconds(actors)
        t0 = time.perf_counter()
        done = 0
        async with self.ex.map([ECHO_INPUT] * self.calls, **kwargs) as stream:
            async for _, result in stream:
                if isinstance(result, Exception):
                    raise result
                done += 1
        elapsed = time.perf_counter() - t0
        assert done == self.calls
        self.rates.append(self.calls / elapsed)
        self.driver_cpu.append((cpu_seconds([os.getpid()]) - me) / self.calls * 1e3)
        self.actor_cpu.append((cpu_seconds(actors) - them) / self.calls * 1e3)

    def cells(self, direct: float) -> list[Any]:
        rate = statistics.median(self.rates)
        actor = statistics.median(self.actor_cpu) if self.has_actors else None
        return [
            self.name,
            rate,
            f"{rate / direct:.0%}",
            f"{statistics.median(self.driver_cpu):.3f}",
            "-" if actor is None else f"{actor:.3f}",
        ]


async def one_node(args: argparse.Namespace, mode: str) -> tuple[list[list[Any]], list[Row]]:
    """Direct vs RayExecutor (one actor, on the head node): latency, then map throughput."""
    from executor.ray import RayExecutor

    config = make_config(args.workers, mode)
    direct = ContainerExecutor(config)
    default = RayExecutor(config)
    wide = RayExecutor(config, max_in_flight_per_actor=args.window)
    unchunked = RayExecutor(config, chunk_size=1)
    ray_calls = RayExecutor(config, data_channel=False)
    async with direct, default, wide, unchunked, ray_calls:
        window = f"window {args.window}"
        rows = [
            Row(f"{name} ({mode})", ex, concurrency, calls, mode)
            for name, ex, concurrency, calls in [
                (
                    f"direct ContainerExecutor, concurrency {args.concurrency}",
                    direct,
                    args.concurrency,
                    args.calls,
                ),
                ("RayExecutor, 1 node, chunked, window 32 (default)", default, None, args.calls),
                (f"RayExecutor, 1 node, chunked, {window}", wide, None, args.calls),
                ("RayExecutor, 1 node, chunk_size=1, window 32", unchunked, None, args.calls // 4),
                ("RayExecutor, 1 node, data_channel=False, window 32", ray_calls, None, args.calls),
            ]
        ]
        for row in rows:  # warm-up: workers up, first calls paid
            row.calls, calls = 200, row.calls
            await row.round()
            row.calls, row.rates, row.driver_cpu, row.actor_cpu = calls, [], [], []
        lat: dict[str, list[float]] = {"direct": [], "ray": [], "ray calls": []}
        for _ in range(max(args.latency_calls // 20, 1)):
            lat["direct"] += await latency(direct, 20)
            lat["ray"] += await latency(default, 20)
            lat["ray calls"] += await latency(ray_calls, 20)
        for _ in range(args.rounds):
            for row in rows:
                await row.round()
    d, r, c = summary(lat["direct"]), summary(lat["ray"]), summary(lat["ray calls"])
    latency_rows = [
        [f"direct ContainerExecutor ({mode})", d["p50"], d["p95"], "-"],
        [f"RayExecutor, 1 node ({mode})", r["p50"], r["p95"], f"{r['p50'] - d['p50']:+.2f}"],
        [
            f"RayExecutor, 1 node, data_channel=False ({mode})",
            c["p50"],
            c["p95"],
            f"{c['p50'] - d['p50']:+.2f}",
        ],
    ]
    return latency_rows, rows


async def two_nodes(args: argparse.Namespace) -> tuple[Row, list[int]]:
    """RayExecutor with one actor per node (head + worker node), chunked map."""
    from executor.ray import RayExecutor

    ex = RayExecutor(make_config(args.workers))
    async with ex:
        row = Row(
            "RayExecutor, 2 nodes, chunked, window 32 (default) (reuse)", ex, None, args.calls
        )
        await ex.execute_many([ECHO_INPUT] * 400)
        for _ in range(args.rounds):
            await row.round()
        split = [n["calls"] for n in ex.nodes]
    return row, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="inputs per map round")
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4, help="reuse workers per executor")
    parser.add_argument("--concurrency", type=int, default=16, help="direct map concurrency")
    parser.add_argument("--window", type=int, default=256, help="the wide max_in_flight_per_actor")
    args = parser.parse_args()

    import ray

    cluster = LocalRayCluster()
    private = PrivateDockerd()
    latency_rows: list[list[Any]] = []
    rows: list[Row] = []
    try:
        cluster.start_head()
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        modes = ["reuse", "fork"]
        for mode in modes:
            lat, tput = asyncio.run(one_node(args, mode))
            latency_rows += lat
            rows += tput
        private.start()
        private.load_image(PYTHON_IMAGE)
        cluster.start_worker("worker", {"DOCKER_HOST": private.url})
        two, split = asyncio.run(two_nodes(args))
        rows.append(two)
    finally:
        ray.shutdown()
        cluster.destroy()
        private.destroy()

    print(f"machine: {machine()}, Ray {ray.__version__}")
    print(
        f"reuse (serve-mode workers) and fork modes, {args.workers} workers per executor, "
        f"a trivial task; map of {args.calls} inputs (chunk_size=1: {args.calls // 4}), median of "
        f"{args.rounds} interleaved rounds. Both Ray nodes share this machine's 2 cores.\n"
    )
    print(table(["one call, sequential", "p50 ms", "p95 ms", "Ray cost p50 ms"], latency_rows))
    print()
    # Each row against the direct executor of its own mode: the first row of that mode.
    direct: dict[str, float] = {}
    for row in rows:
        direct.setdefault(row.mode, statistics.median(row.rates))
    headers = ["map throughput", "calls/s", "vs direct", "caller CPU ms/call", "actor CPU ms/call"]
    print(table(headers, [row.cells(direct[row.mode]) for row in rows]))
    print(f"\ntwo nodes: calls per actor {split}")


if __name__ == "__main__":
    main()
