"""The whole benchmark suite: writes bench/RESULTS.md and bench/latency.png.

Run: ``make bench`` (or ``.venv/bin/python bench/suite.py [--quick]``). Everything runs in one
process on one machine: local overhead, one container call each way (CLI, hand-written
aiodocker, fresh, warm pool, reuse), throughput of 200 calls at concurrency 1/4/8, the Node
and Go runners, memory per idle pooled container, and llm-sandbox where it can be installed.
Then the focused benchmarks, each in a process of its own and quoted whole: fork mode against
an unsandboxed harness (``fork.py``), admission control under load (``load.py``), code strings
and streaming (``code.py``), OpenTelemetry's cost (``observe.py``), with the ``ray`` extra Ray
against a direct executor (``ray.py``), sessions (``sessions.py``), the seccomp profile's cost
(``seccomp.py``), judging (``judge.py``) and ``requirements=`` (``deps.py``). ``--only-suite``
skips them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiodocker

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import local as local_bench  # noqa: E402
from _common import (  # noqa: E402
    BENCH_LABEL,
    ECHO_INPUT,
    GO_IMAGE,
    NODE_IMAGE,
    PYTHON_IMAGE,
    bench_leftovers,
    cli_call,
    handwritten_call,
    machine,
    summary,
    table,
    timed,
)

from executor import ContainerConfig, ContainerExecutor  # noqa: E402

LLM_SANDBOX_VENV = Path(os.environ.get("LLM_SANDBOX_VENV", HERE / ".venv-llm-sandbox"))


def cfg(image: str = PYTHON_IMAGE, **kwargs: Any) -> ContainerConfig:
    return ContainerConfig(image, labels={BENCH_LABEL: "1"}, timeout=60, **kwargs)


async def pool_ready(ex: ContainerExecutor[Any, Any], size: int) -> None:
    """Wait (bounded) until the pool holds ``size`` idle containers again."""
    pool = ex._pool
    deadline = time.monotonic() + 30
    while pool is not None and pool.idle < size and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def settle(*executors: ContainerExecutor[Any, Any], size: int = 0) -> None:
    """Let background work (removals, refills) finish so it does not hit the next call."""
    for ex in executors:
        if ex._pool is not None:
            await pool_ready(ex, size)
    await asyncio.sleep(0.3)


async def latency_modes(
    calls: int, image: str, *, with_baselines: bool
) -> dict[str, dict[str, float]]:
    """One call at a time, each way.

    The CLI, the hand-written sequence and a fresh container are interleaved round-robin (a
    fair comparison under machine noise). The warm pool and reuse rows are measured after,
    each call starting with the engine idle: a pool call starts with a container ready, and
    no other mode's removals or refills run under it.
    """
    out: dict[str, list[float]] = {}
    if with_baselines:
        out["docker run -i --rm (CLI)"] = []
        out["hand-written aiodocker"] = []
    out["fresh container"] = []
    out["warm pool"] = []
    out["reuse (serve mode)"] = []
    async with aiodocker.Docker() as docker, ContainerExecutor(cfg(image)) as fresh:
        await fresh.execute(ECHO_INPUT)
        for _ in range(calls):
            if with_baselines:
                out["docker run -i --rm (CLI)"].append(await timed(lambda: cli_call(image)))
                out["hand-written aiodocker"].append(
                    await timed(lambda: handwritten_call(docker, image))
                )
            out["fresh container"].append(await timed(lambda: fresh.execute(ECHO_INPUT)))
    async with ContainerExecutor(cfg(image, mode="pool", containers=2, prewarm=True)) as pooled:
        for _ in range(calls):
            await settle(pooled, size=2)
            out["warm pool"].append(await timed(lambda: pooled.execute(ECHO_INPUT)))
    async with ContainerExecutor(cfg(image, mode="reuse", containers=1, max_uses=10_000)) as reused:
        await reused.execute(ECHO_INPUT)
        for _ in range(calls):
            out["reuse (serve mode)"].append(await timed(lambda: reused.execute(ECHO_INPUT)))
    return {name: summary(v) for name, v in out.items()}


async def handwritten_throughput(calls: int, concurrency: int) -> float:
    """Calls per second of the hand-written sequence at ``concurrency`` (the engine's pace)."""
    async with aiodocker.Docker() as docker:
        limiter = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with limiter:
                await handwritten_call(docker, PYTHON_IMAGE)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        return calls / (time.perf_counter() - t0)


async def throughput(calls: int) -> list[list[Any]]:
    """Calls per second for a batch of ``calls`` at concurrency 1, 4, 8 in each mode."""
    rows = []
    modes = {
        "fresh": {},
        "warm pool (containers=8)": {"mode": "pool", "containers": 8, "prewarm": True},
        "reuse (8 prewarmed workers)": {
            "mode": "reuse",
            "max_uses": 10_000,
            "containers": 8,
            "prewarm": True,
        },
    }
    rows.append(
        [
            "hand-written aiodocker (baseline)",
            *[await handwritten_throughput(calls, c) for c in (1, 4, 8)],
        ]
    )
    for name, extra in modes.items():
        row: list[Any] = [name]
        for concurrency in (1, 4, 8):
            async with ContainerExecutor(cfg(**extra)) as ex:
                await ex.execute(ECHO_INPUT)
                t0 = time.perf_counter()
                results = await ex.execute_many([ECHO_INPUT] * calls, concurrency=concurrency)
                elapsed = time.perf_counter() - t0
                assert len(results) == calls
            row.append(calls / elapsed)
        rows.append(row)
    return rows


async def idle_memory(size: int = 20) -> tuple[float, float]:
    """Python-heap KiB per idle pooled container (tracemalloc) and RSS KiB per container."""
    ex = ContainerExecutor(cfg(mode="pool", containers=size))
    async with ex:
        await ex.execute(ECHO_INPUT)  # engine client, API version, image check: not per container
        await pool_ready(ex, size)  # the first call's refill
        gc.collect()
        tracemalloc.start()
        rss0 = _rss_kib()
        before = tracemalloc.take_snapshot()
        pool = ex._pool
        assert pool is not None
        pool.size = size * 2
        pool._kick()
        await pool_ready(ex, size * 2)
        gc.collect()
        after = tracemalloc.take_snapshot()
        rss1 = _rss_kib()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return grown / 1024 / size, (rss1 - rss0) / size


def _rss_kib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return 0.0


def llm_sandbox(calls: int) -> dict[str, Any]:
    """Run bench/llm_sandbox_probe.py in its own venv; {} with a reason if it cannot run."""
    python = LLM_SANDBOX_VENV / "bin" / "python"
    if not python.exists():
        setup = subprocess.run(
            f"python3 -m venv {LLM_SANDBOX_VENV} && "
            f"{python} -m pip install -q 'llm-sandbox[docker]'",
            shell=True,
            capture_output=True,
            text=True,
            check=False,
        )
        if setup.returncode != 0:
            return {"error": f"pip install llm-sandbox failed: {setup.stderr[-300:]}"}
    proc = subprocess.run(
        [
            str(python),
            str(HERE / "llm_sandbox_probe.py"),
            "--calls",
            str(calls),
            "--image",
            PYTHON_IMAGE,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"error": f"probe failed: {(proc.stderr or proc.stdout)[-400:]}"}


#: The focused benchmarks: title, script and arguments (full run, then --quick run).
FOCUSED: list[tuple[str, str, list[str], list[str]]] = [
    ("Fork mode against an unsandboxed harness", "fork.py", [], ["--quick"]),
    (
        "Node fork mode: the start-up snapshot",
        "fork_node.py",
        [],
        ["--calls", "15", "--rounds", "1"],
    ),
    ("Admission control under load", "load.py", [], ["--quick"]),
    ("Code strings, files back, streaming", "code.py", [], ["--calls", "30"]),
    ("What OpenTelemetry costs a call", "observe.py", [], ["--calls", "20000"]),
    ("Ray against a direct executor", "ray.py", [], ["--calls", "300", "--rounds", "1"]),
    ("Sessions", "sessions.py", [], ["--enters", "5", "--cells", "50", "--idle", "5"]),
    ("The seccomp profile's cost", "seccomp.py", [], ["--calls", "5"]),
    ("Judging programs: A+B in C++ against 100 tests", "judge.py", [], ["--rounds", "1"]),
    ("Dependencies (`requirements=`)", "deps.py", [], ["--rounds", "1", "--hits", "1"]),
]


#: llm-sandbox's session image for bench/sessions.py (bench/llm_sandbox_session_probe.py says
#: how to make it; nothing can be pulled here).
LLM_SANDBOX_SESSION_IMAGE = "executor-sessions/llm-sandbox-ipython:latest"


def llm_sandbox_session_args() -> list[str]:
    """``--llm-sandbox`` arguments for sessions.py when its venv and its image are here."""
    python = LLM_SANDBOX_VENV / "bin" / "python"
    found = subprocess.run(
        ["docker", "image", "inspect", LLM_SANDBOX_SESSION_IMAGE],
        capture_output=True,
        check=False,
    )
    if not python.exists() or found.returncode != 0:
        return []
    return ["--llm-sandbox", str(python), "--llm-sandbox-image", LLM_SANDBOX_SESSION_IMAGE]


def focused(title: str, script: str, args: list[str]) -> list[str]:
    """Run one focused benchmark in its own process; its output, quoted whole, under a title."""
    if script == "ray.py":
        try:
            import ray  # noqa: F401
        except ImportError:
            return ["", f"## {title}", "", "Skipped: the `ray` extra is not installed."]
    if script == "sessions.py":
        args = [*args, *llm_sandbox_session_args()]
    command = [sys.executable, str(HERE / script), *args]
    started = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    shown = " ".join([".venv/bin/python", f"bench/{script}", *args])
    status = "" if proc.returncode == 0 else f" (exit status {proc.returncode})"
    out = proc.stdout.strip() or proc.stderr.strip()[-2000:]
    return [
        "",
        f"## {title}",
        "",
        f"`{shown}`{status}, {time.time() - started:.0f} s:",
        "",
        out,
    ]


def chart(latencies: dict[str, dict[str, dict[str, float]]], path: Path) -> bool:
    """A bar chart of p50 latency per mode and runner (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels, values, colors = [], [], []
    palette = {"python": "#3776ab", "node": "#68a063", "go": "#00add8"}
    for runner, modes in latencies.items():
        for mode, r in modes.items():
            labels.append(f"{runner}: {mode}")
            values.append(r["p50"])
            colors.append(palette.get(runner, "#888"))
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(labels) + 1.2))
    ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per call, ms (log scale)")
    ax.set_title("executor: one call, by mode and runner")
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


async def run(quick: bool, only_suite: bool) -> str:
    calls = 10 if quick else 30
    batch = 40 if quick else 200
    started = time.time()
    parts = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}.",
        f"Command: `make bench` (`.venv/bin/python bench/suite.py{' --quick' if quick else ''}`), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "All rows of a table ran in one process, interleaved where they are compared.",
        "",
        "## Local executor (ns per call)",
        "",
    ]
    local_rows = await local_bench.measure()
    bare = local_rows[0][1]
    parts.append(
        table(
            ["case", "ns/op", "x bare"],
            [[n, round(ns), f"{ns / bare:.1f}"] for n, ns in local_rows],
        )
    )

    latencies: dict[str, dict[str, dict[str, float]]] = {}
    latencies["python"] = await latency_modes(calls, PYTHON_IMAGE, with_baselines=True)
    latencies["node"] = await latency_modes(calls, NODE_IMAGE, with_baselines=False)
    latencies["go"] = await latency_modes(calls, GO_IMAGE, with_baselines=False)
    py = latencies["python"]
    hand = py["hand-written aiodocker"]["p50"]
    fresh = py["fresh container"]["p50"]
    parts += [
        "",
        f"## One call, Python runner ({calls} calls per row, interleaved; ms)",
        "",
        "Pool rows start each call with a pooled container ready (the pool refilled between "
        "calls): the latency a service sees while the pool keeps up. Sustained rates are in "
        "the throughput table.",
        "",
        table(
            ["mode", "p50", "p95", "max", "p50 vs hand-written", "fresh / this"],
            [
                [
                    m,
                    r["p50"],
                    r["p95"],
                    r["max"],
                    f"{r['p50'] / hand:.2f}x",
                    f"{fresh / r['p50']:.1f}x",
                ]
                for m, r in py.items()
            ],
        ),
        "",
        "## Node and Go runners (ms)",
        "",
        table(
            ["runner", "mode", "p50", "p95", "max"],
            [
                [runner, m, r["p50"], r["p95"], r["max"]]
                for runner in ("node", "go")
                for m, r in latencies[runner].items()
            ],
        ),
    ]
    thr = await throughput(batch)
    parts += [
        "",
        f"## Throughput: {batch} calls through execute_many (calls/s)",
        "",
        table(["mode", "concurrency 1", "concurrency 4", "concurrency 8"], thr),
    ]
    heap_kib, rss_kib = await idle_memory()
    parts += [
        "",
        "## Host memory per idle pooled container",
        "",
        f"Python heap (tracemalloc): {heap_kib:.1f} KiB; process RSS: {rss_kib:.1f} KiB "
        "(growth from 20 to 40 idle containers, divided by 20).",
    ]
    sandbox = llm_sandbox(min(calls, 15))
    parts += ["", "## llm-sandbox (the most used Python sandbox library), same task", ""]
    if "error" in sandbox:
        parts.append(f"Could not run: {sandbox['error']}")
    else:
        parts.append(
            table(
                ["mode", "p50 ms", "p95 ms", "max ms"],
                [
                    [m, r["p50"], r["p95"], r["max"]]
                    for m, r in sandbox.items()
                    if isinstance(r, dict)
                ],
            )
        )
        if note := sandbox.get("note"):
            parts.append(f"\n{note}")
    if chart(latencies, HERE / "latency.png"):
        parts += ["", "![p50 latency per mode](latency.png)"]
    if not only_suite:
        for title, script, full, short in FOCUSED:
            parts += focused(title, script, short if quick else full)
    left = bench_leftovers()
    parts += [
        "",
        f"Containers left behind after the suite: {len(left)}. "
        f"Suite time: {time.time() - started:.0f} s.",
        "",
    ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls (smoke run)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--only-suite", action="store_true", help="skip the focused benchmarks")
    args = parser.parse_args()
    text = asyncio.run(run(args.quick, args.only_suite))
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
