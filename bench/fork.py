"""Fork mode against the reference fork server, unsandboxed harnesses, a warm pool and reuse.

Run: ``.venv/bin/python bench/fork.py [--programs N] [--rounds R] [--quick]`` (engine + runner
images). Container CPU by process name: ``../shared/tools/cpusplit.py .venv/bin/python
bench/fork.py --way fork`` (one way alone, so the whole machine's CPU is that way's).

A corpus of small Python programs with asserts (passing, failing, raising), once without and
once with a few infinite loops spaced apart, is evaluated these ways, side by side in this
process, in alternated rounds:

* an unsandboxed harness shaped like human-eval's ``execution.py`` (``_humaneval.py``: per
  program a ``multiprocessing.Manager`` list, one ``Process``, a temp dir,
  ``reliability_guard``, a timeout), 4 at a time;
* a lighter unsandboxed harness: one ``multiprocessing.Process`` per program and a pipe;
* the reference fork server (``../shared/reference/forkserver.py``, a 45-line floor without
  fork mode's guarantees) as a ``mode="reuse"`` entrypoint, when present;
* ``ContainerExecutor`` with a single-use warm pool (a fresh container per program; on the
  first ``--single-use`` programs only: it is 20-80x slower);
* fork mode (``mode="fork"``: a fresh process per program in wiped containers);
* reuse mode (``mode="reuse"``: one long-lived process per container: fast, not isolated).

Every way must give every program the same verdict (``pass``, ``fail`` for an
AssertionError, ``error:<type>``, ``timeout``); the script exits 1 otherwise. Container CPU
per call is read from the containers' cgroups (cgroup v1 cpuacct or v2 cpu.stat) around the
timed run. Then, per runner in fork mode (and the reference fork server): a trivial call's
p50 back to back and 5 ms apart (one container), and calls/s with 4 containers at
concurrency 8 with the container CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from _humaneval import human_eval_harness

from executor import ContainerConfig, ContainerExecutor, ExecutionTimeout, ExecutorError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

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


REFERENCE = Path(
    os.environ.get(
        "EXECUTOR_REFERENCE_FORKSERVER",
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "forkserver.py",
    )
)


def container_ids(label: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split()


def container_cpu(ids: list[str]) -> float | None:
    """CPU seconds the containers used so far (their cgroups), None when unreadable."""
    total = 0.0
    for cid in ids:
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
        try:
            if v1.exists():
                total += int(v1.read_text()) / 1e9
            else:
                stat = dict(line.split() for line in v2.read_text().splitlines())
                total += int(stat["usage_usec"]) / 1e6
        except (OSError, KeyError, ValueError):
            return None
    return total


class Way:
    """One way of running the corpus: a name and a coroutine giving (verdicts, seconds,
    container CPU ms per call or None)."""

    def __init__(
        self,
        key: str,
        name: str,
        run: Callable[[list[str]], Awaitable[tuple[list[str], float, float | None]]],
        limit: int | None = None,
    ):
        self.key, self.name, self.run, self.limit = key, name, run, limit


async def through(
    settings: dict[str, Any], programs: list[str], concurrency: int
) -> tuple[list[str], float, float | None]:
    """The corpus through one ContainerExecutor; with workers (reuse, fork), the CPU per call
    of the containers that served the timed run (a worker replaced meanwhile is not counted:
    with max_uses=100_000 none is, unless one fails)."""
    label = f"executor.bench-way={uuid.uuid4().hex[:12]}"
    settings = {"files": FILES, **settings}
    config = ContainerConfig(
        PYTHON_IMAGE,
        labels={BENCH_LABEL: "1", "executor.bench-way": label.split("=")[1]},
        timeout=TIMEOUT,
        start_timeout=600,
        **settings,
    )
    async with ContainerExecutor(config) as ex:
        for attempt in range(5):  # image derived, containers started (a loaded machine may
            try:  # need more than one timeout for the very first call)
                await ex.execute({"code": "pass"})
                break
            except ExecutionTimeout:
                if attempt == 4:
                    raise
        if ex._pool is not None:
            deadline = time.monotonic() + 60
            while ex._pool.idle < ex._pool.size and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        ids = container_ids(label) if settings.get("mode") in ("reuse", "fork") else []
        cpu_before = container_cpu(ids) if ids else None
        started = time.perf_counter()
        results = await ex.execute_many(
            [{"code": code} for code in programs], concurrency=concurrency, return_exceptions=True
        )
        elapsed = time.perf_counter() - started
        cpu_after = container_cpu(ids) if ids else None
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = (cpu_after - cpu_before) / len(programs) * 1000
    return [verdict_of(r) for r in results], elapsed, cpu


def reference_settings() -> dict[str, Any]:
    """The reference fork server as a reuse-mode entrypoint, as its README shows."""
    return {
        "files": {"/app/execute.py": TASK, "/app/forkserver.py": REFERENCE.read_text()},
        "entrypoint": ["python3", "/app/forkserver.py"],
        "workdir": "/app",
        "mode": "reuse",
        "containers": 4,
        "max_uses": 100_000,
    }


def ways(single_use: int) -> list[Way]:
    async def light(programs: list[str]) -> tuple[list[str], float, float | None]:
        return (*await harness(programs), None)

    async def human_eval(programs: list[str]) -> tuple[list[str], float, float | None]:
        return (*await human_eval_harness(programs, TIMEOUT), None)

    def container(settings: dict[str, Any], concurrency: int = 8) -> Any:
        return lambda programs: through(settings, programs, concurrency)

    reference = container(reference_settings()) if REFERENCE.is_file() else None
    fork = {"mode": "fork", "containers": 4, "max_uses": 100_000}
    reuse = {"mode": "reuse", "containers": 4, "max_uses": 100_000}
    found = [
        Way("human-eval", "unsandboxed, human-eval-shaped harness (4 workers)", human_eval),
        Way("light", "unsandboxed, light multiprocessing harness (4 workers)", light),
        *([Way("reference", "reference fork server (mode='reuse' entrypoint, 4)", reference)]
          if reference is not None else []),
        Way("single-use", "single-use warm pool (containers=4)", container(
            {"mode": "pool", "containers": 4}, 4),
            single_use),
        Way("fork", "fork mode (mode='fork', containers=4)", container(fork)),
        Way("reuse", "mode='reuse' (containers=4)", container(reuse)),
    ]  # fmt: skip
    return found


async def compare(programs: list[str], rounds: int, single_use: int, only: str | None) -> int:
    """Every way on ``programs``, ``rounds`` times in alternated order; print the table and
    return how many verdicts differ from the first way's."""
    chosen = [w for w in ways(single_use) if only is None or only == w.key]
    runs: dict[str, list[tuple[list[str], float, float | None]]] = {w.name: [] for w in chosen}
    for r in range(rounds):
        for way in chosen if r % 2 == 0 else chosen[::-1]:
            runs[way.name].append(await way.run(programs[: way.limit]))
    baseline = runs[chosen[0].name][0][0]
    rates = {
        name: statistics.median(len(v) / t for v, t, _ in results) for name, results in runs.items()
    }
    harness_rate = rates[chosen[0].name]
    reference_rate = next((rate for name, rate in rates.items() if "reference" in name), None)
    rows, differing = [], 0
    for name, results in runs.items():
        wrong = max(sum(v != b for v, b in zip(vs, baseline, strict=False)) for vs, _, _ in results)
        differing += wrong
        cpus = [c for _, _, c in results if c is not None]
        rows.append(
            [
                name,
                len(results[0][0]),
                f"{rates[name]:.1f}",
                f"{rates[name] / harness_rate:.2f}x",
                "-" if reference_rate is None else f"{rates[name] / reference_rate:.2f}x",
                f"{statistics.median(cpus):.2f}" if cpus else "-",
                wrong,
            ]
        )
    headers = [
        "way",
        "programs",
        "programs/s (median)",
        f"vs {chosen[0].key}",
        "vs reference",
        "container CPU ms/call",
        "verdicts differing",
    ]
    print(table(headers, rows))
    counts: dict[str, int] = {}
    for verdict in baseline:
        counts[verdict] = counts.get(verdict, 0) + 1
    print(f"\nverdicts: {dict(sorted(counts.items()))}\n")
    return differing


async def trivial(settings: dict[str, Any], image: str, calls: int) -> list[str]:
    """One container: trivial-call p50 back to back and 5 ms apart, p95 (apart); then 4
    containers at concurrency 8: calls/s and container CPU per call."""
    base = {"labels": {BENCH_LABEL: "1"}, "timeout": 30, "start_timeout": 600}
    one = {**base, **settings, "containers": 1}
    async with ContainerExecutor(ContainerConfig(image, **one)) as ex:
        for _ in range(5):
            await ex.execute({"n": 0})
        spaced, back = [], []
        for i in range(calls):  # alternated: a spaced call, then one right after an answer
            await asyncio.sleep(0.005)
            t0 = time.perf_counter()
            await ex.execute({"n": i})
            t1 = time.perf_counter()
            await ex.execute({"n": i})
            spaced.append(t1 - t0)
            back.append(time.perf_counter() - t1)
    label = uuid.uuid4().hex[:12]
    many = {**base, **settings, "containers": 4, "max_uses": 100_000}
    many["labels"] = {BENCH_LABEL: "1", "executor.bench-way": label}
    async with ContainerExecutor(ContainerConfig(image, **many)) as ex:
        await ex.execute_many([{"n": i} for i in range(16)], concurrency=8)
        ids = container_ids(f"executor.bench-way={label}")
        cpu0 = container_cpu(ids)
        t0 = time.perf_counter()
        await ex.execute_many([{"n": i} for i in range(calls * 2)], concurrency=8)
        elapsed = time.perf_counter() - t0
        cpu1 = container_cpu(ids)
    spaced.sort()
    cpu = "-" if cpu0 is None or cpu1 is None else f"{(cpu1 - cpu0) / (calls * 2) * 1000:.2f}"
    return [
        f"{statistics.median(back) * 1000:.2f}",
        f"{statistics.median(spaced) * 1000:.2f}",
        f"{spaced[int(0.95 * len(spaced))] * 1000:.2f}",
        f"{calls * 2 / elapsed:.0f}",
        cpu,
    ]


async def main(args: argparse.Namespace) -> int:
    print(f"machine: {machine()}")
    print(f"python image: {PYTHON_IMAGE}; reference: {REFERENCE if REFERENCE.is_file() else '-'}")
    differing = 0
    for loops in (0, args.loops):
        programs = corpus(args.programs, loops)
        print(
            f"\ncorpus: {len(programs)} programs ({sum('while True' in p for p in programs)} "
            f"infinite loops), timeout {TIMEOUT:g} s per program, {args.rounds} alternated "
            "rounds\n"
        )
        differing += await compare(programs, args.rounds, args.single_use, args.way)
    if args.way is None:
        rows = []
        # Echo tasks shipped with files=: a stock runner image need not carry a task.
        echo_py = {"/app/execute.py": "def execute(input):\n    return input\n"}
        echo_js = {"/app/execute.mjs": "export function executeFunction(input) { return input; }\n"}
        runners = [("python", {"mode": "fork", "files": echo_py}, PYTHON_IMAGE)]
        if REFERENCE.is_file():
            ref = {**reference_settings(), "files": {
                **echo_py, "/app/forkserver.py": REFERENCE.read_text()}}  # fmt: skip
            ref.pop("max_uses")
            runners.append(("python, reference fork server", ref, PYTHON_IMAGE))
        runners += [
            ("node", {"mode": "fork", "files": echo_js}, NODE_IMAGE),
            ("go", {"mode": "fork"}, GO_IMAGE),  # its echo function is compiled in
        ]
        for language, settings, image in runners:
            calls = 20 if language == "node" and args.quick else 50 if args.quick else 200
            rows.append([language, *await trivial(settings, image, calls)])
        print("trivial calls in fork mode (reference: its reuse-mode entrypoint):\n")
        headers = ["runner", "p50 ms back to back", "p50 ms 5 ms apart", "p95 ms 5 ms apart"]
        headers += ["calls/s, 4 containers, concurrency 8", "container CPU ms/call"]
        print(table(headers, rows))
    print(f"\ncontainers left behind: {len(bench_leftovers())}")
    return 1 if differing else 0


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--programs", type=int, default=400)
    parser.add_argument("--loops", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--single-use", type=int, default=40, help="programs for the warm pool")
    parser.add_argument(
        "--way",
        choices=["human-eval", "light", "reference", "single-use", "fork", "reuse"],
        help="run only this way, and no trivial calls (for cpusplit)",
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.programs, args.rounds, args.single_use = min(args.programs, 200), 1, 20
    sys.exit(asyncio.run(main(args)))
