"""What a session costs: entering one (from a warm pool, and cold), a cell, and memory idle.

Run: ``.venv/bin/python bench/sessions.py [--enters N] [--cells N] [--idle N]`` (engine + the
Python runner image with ``/opt/executor/session.py``; ``EXECUTOR_PYTHON_IMAGE`` points
elsewhere).

Rows:

* enter from a ``SessionPool`` (``size=4``): ``async with pool.session()`` up to the
  interpreter's ready line; the pool is refilled (untimed) between samples;
* enter a bare ``Session(...)`` (no ``pool=``: the implicit warm pool of its language, config
  and loop), waiting (untimed) between samples for its spare;
* enter cold (``SessionPool(size=0)``: a container start plus the interpreter's);
* a cell round trip of ``x = 1`` in Python and ``x=1`` in bash, one session, one after another;
* memory per idle session: ``--idle`` sessions open at once, each after one cell, as the
  engine accounts it (``docker stats``: the container's cgroup, both interpreters and the
  session server), and the host process's RSS growth per session.

With ``--llm-sandbox PYTHON --llm-sandbox-image IMAGE`` the same rows for llm-sandbox's
stateful session (``InteractiveSandboxSession``: an IPython runner in a container it starts,
cells passed through files and ``docker exec``), run by ``bench/llm_sandbox_session_probe.py``
with PYTHON (a venv holding ``llm-sandbox[docker]``) in the same run; the probe's docstring says
how its image is made.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_LABEL, PYTHON_IMAGE, machine, summary, table

from executor import ContainerConfig, Session, SessionPool

#: This run's own label too: other benchmarks may run on the same engine meanwhile.
RUN = uuid.uuid4().hex[:12]
LABELS = {BENCH_LABEL: "1", "executor.bench-run": RUN}


def leftovers() -> list[str]:
    """This run's containers still on the engine."""
    done = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=executor.bench-run={RUN}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.split()


def _mib(text: str) -> float:
    number = float("".join(c for c in text if c.isdigit() or c == "."))
    unit = text.lstrip("0123456789. ")
    return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 2**20}.get(unit, 1)


def engine_memory(ids: list[str]) -> list[float]:
    """MiB in use per container, as ``docker stats`` reports it."""
    done = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    )
    return [_mib(line.split("/")[0].strip()) for line in done.stdout.splitlines() if line]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def enters(pool: SessionPool, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        with anyio.fail_after(60):
            while pool.idle < pool.size:
                await anyio.sleep(0.01)
        t0 = time.perf_counter()
        async with pool.session() as s:
            samples.append(time.perf_counter() - t0)
            await s.run("1")
    return samples


async def cells(session: Session, code: str, count: int) -> list[float]:
    samples = []
    for n in range(count + 20):
        t0 = time.perf_counter()
        await session.run(code)
        if n >= 20:
            samples.append(time.perf_counter() - t0)
    return samples


def llm_sandbox(python: str, image: str) -> dict[str, Any]:
    """llm-sandbox's numbers from its probe, in its own venv (blocking)."""
    probe = Path(__file__).resolve().parent / "llm_sandbox_session_probe.py"
    done = subprocess.run(
        [python, str(probe), "--image", image, "--label", f"executor.bench-run={RUN}"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": done.stderr[-300:]}
    return result


async def main(
    n_enters: int, n_cells: int, n_idle: int, sandbox: str | None, sandbox_image: str | None
) -> None:
    config = ContainerConfig(PYTHON_IMAGE, labels=LABELS, timeout=10)
    rows: list[list[Any]] = []
    async with SessionPool("python", config, size=4) as pool:
        await enters(pool, 3)  # warm the engine's caches
        stats = summary(await enters(pool, n_enters))
        rows.append(["enter, from a SessionPool (size=4)", stats["p50"], stats["p95"], stats["n"]])
    bare = []
    for _ in range(n_enters):
        t0 = time.perf_counter()
        async with Session("python", config) as s:
            bare.append(time.perf_counter() - t0)
            await s.run("1")
            implicit = s._own_pool
        assert implicit is not None
        with anyio.fail_after(60):
            while implicit.idle < 1:
                await anyio.sleep(0.01)
    stats = summary(bare[1:])  # the first one starts the implicit pool
    rows.append(["enter, bare Session (implicit pool)", stats["p50"], stats["p95"], stats["n"]])
    cold = []
    async with SessionPool("python", config, size=0) as pool:
        for _ in range(max(3, n_enters // 5)):
            t0 = time.perf_counter()
            async with pool.session() as s:
                cold.append(time.perf_counter() - t0)
                await s.run("1")
    stats = summary(cold)
    rows.append(["enter, cold (SessionPool size=0)", stats["p50"], stats["p95"], stats["n"]])
    for language, code in (("python", "x = 1"), ("bash", "x=1")):
        async with Session(language, config) as s:
            stats = summary(await cells(s, code, n_cells))
        rows.append(
            [f"cell round trip, {language} `{code}`", stats["p50"], stats["p95"], stats["n"]]
        )
    rss0 = rss_mib()
    async with SessionPool("python", config, size=0) as pool:
        sessions = [pool.session() for _ in range(n_idle)]
        async with anyio.create_task_group() as tg:
            for s in sessions:
                tg.start_soon(s.start)
        for s in sessions:
            await s.run("x = 1")
        await anyio.sleep(1)
        used = engine_memory([str(s.container_id) for s in sessions])
        rss1 = rss_mib()
    mean = sum(used) / len(used)
    other = ""
    if sandbox and sandbox_image:
        found = await anyio.to_thread.run_sync(llm_sandbox, sandbox, sandbox_image)
        if "error" in found:
            other = f"llm-sandbox could not be measured: {found['error']}"
        else:
            for what, key in (("enter", "enter"), ("cell round trip, python `x = 1`", "cell")):
                stats = summary(found[key])
                rows.append([f"llm-sandbox: {what}", stats["p50"], stats["p95"], stats["n"]])
            other = (
                f"llm-sandbox's InteractiveSandboxSession, idle after its cells: "
                f"{found['memory_mib']:.1f} MiB in the engine's accounting."
            )
    print(f"{machine()}\n")
    print(table(["what", "p50 ms", "p95 ms", "samples"], rows))
    print(
        f"\nMemory per idle Python session ({n_idle} open, one cell each): {mean:.1f} MiB in "
        f"the engine's accounting (min {min(used):.1f}, max {max(used):.1f}); the host "
        f"process's peak RSS grew {(rss1 - rss0) / n_idle * 1024:.0f} KiB per session."
    )
    if other:
        print(f"\n{other}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--enters", type=int, default=30)
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--idle", type=int, default=100)
    parser.add_argument("--llm-sandbox", metavar="PYTHON", help="a venv's python with llm-sandbox")
    parser.add_argument("--llm-sandbox-image", metavar="IMAGE")
    args = parser.parse_args()
    anyio.run(main, args.enters, args.cells, args.idle, args.llm_sandbox, args.llm_sandbox_image)
    # Checked once the loop has ended: bare sessions' implicit pools keep a spare until then.
    left = leftovers()
    if left:
        raise SystemExit(f"containers left behind: {left}")
