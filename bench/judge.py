"""Judging an A+B C++ program against 100 tests: compile time and tests per second.

Run: ``.venv/bin/python bench/judge.py [--tests 100] [--rounds 3]
[--epicbox-python PATH] [--epicbox-tests 20]`` (engine + ``executor/runner-judge:latest``;
``EXECUTOR_JUDGE_IMAGE`` points elsewhere).

Rows, one after another in this process:

* ``CodeExecutor("cpp")`` with one ``CodeRun`` of N tests, fork mode (one warm container) and
  fresh mode (a container per run), under runc, and fork mode under gVisor when registered
  (``pids_limit=512``: under gVisor the limit also counts the sandbox's own threads):
  the program is compiled once, each test is its own process under the CPU/memory limits;
* the same program compiled with the host's g++ and run N times with ``subprocess.run``, no
  sandbox, no limits: the floor;
* epicbox (PyPI, the Docker-based judge library a user would pick that installs here; run
  from its own venv, ``--epicbox-python``): compile once into a shared volume, then a fresh
  container per test, on the same judge image with its entrypoint cleared.

Compile is the compile step alone (inside the container for the executor and epicbox);
tests/s counts the tests after it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_LABEL, bench_leftovers, machine, table

from executor import CodeExecutor, CodeRun, ContainerConfig, ExecutorError, TestCase

HERE = Path(__file__).resolve().parent
JUDGE_IMAGE = os.environ.get("EXECUTOR_JUDGE_IMAGE", "executor/runner-judge:latest")
MiB = 1024 * 1024
SUM = '#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<"\\n";}\n'
LABELS = {BENCH_LABEL: "1"}


def tests(count: int) -> list[TestCase]:
    return [TestCase(f"{i} {2 * i}\n", f"{3 * i}\n") for i in range(count)]


def runsc_registered() -> bool:
    out = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return "runsc" in out


async def executor_row(count: int, rounds: int, **settings: Any) -> list[float] | str:
    """[compile s, tests s, whole run s] medians over ``rounds`` CodeRuns of ``count`` tests."""
    try:
        return await _executor_row(count, rounds, **settings)
    except ExecutorError as exc:  # reported in the table, not hidden
        return f"failed: {exc.code}: {exc}"


async def _executor_row(count: int, rounds: int, **settings: Any) -> list[float]:
    config = ContainerConfig(
        JUDGE_IMAGE, memory_bytes=1024 * MiB, timeout=300.0, labels=LABELS, **settings
    )
    compile_s, tests_s, whole_s = [], [], []
    async with CodeExecutor("cpp", config) as ex:
        run = CodeRun(SUM, tests=tests(count), time_limit=2.0, memory_limit=256 * MiB)
        for _ in range(rounds):
            t0 = time.perf_counter()
            res = await ex.execute(run)
            whole = time.perf_counter() - t0
            assert res.verdict == "AC" and res.compile is not None, res
            compile_s.append(res.compile.duration)
            assert res.usage is not None and res.usage.wall_time is not None
            tests_s.append(res.usage.wall_time)
            whole_s.append(whole)
    return [statistics.median(compile_s), statistics.median(tests_s), statistics.median(whole_s)]


def subprocess_row(count: int, rounds: int) -> list[float]:
    """The floor: host g++, then ``subprocess.run`` per test, no sandbox."""
    compile_s, tests_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run(
                ["g++", "-O2", "-std=gnu++17", "-pipe", "-x", "c++", "-", "-o", f"{tmp}/main"],
                input=SUM.encode(),
                check=True,
            )
            compile_s.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            for case in tests(count):
                out = subprocess.run(
                    [f"{tmp}/main"], input=case.stdin.encode(), capture_output=True, check=True
                )
                assert out.stdout.decode() == case.expected
            tests_s.append(time.perf_counter() - t1)
    compiled, ran = statistics.median(compile_s), statistics.median(tests_s)
    return [compiled, ran, compiled + ran]


def epicbox_row(python: str, count: int) -> list[float] | str:
    """epicbox from its own venv; a reason instead when it cannot run."""
    if not Path(python).exists():
        how = "python -m venv V; V/bin/pip install epicbox 'urllib3<2' 'docker<7' 'requests<2.32'"
        return f"not run: no {python} ({how})"
    plain = "executor-bench/judge-plain:latest"
    subprocess.run(
        ["docker", "build", "-q", "-t", plain, "-"],
        input=f"FROM {JUDGE_IMAGE}\nENTRYPOINT []\nCMD []\n".encode(),
        capture_output=True,
        check=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [python, str(HERE / "judge_epicbox_probe.py"), plain, str(count)],
        input=SUM,
        capture_output=True,
        text=True,
        check=False,
    )
    whole = time.perf_counter() - t0
    if out.returncode != 0:
        return f"failed: {out.stderr.strip()[-300:]}"
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["passed"] == count, got
    return [got["compile"], got["seconds"], whole]


def row(name: str, count: int, numbers: list[float] | str) -> list[Any]:
    if isinstance(numbers, str):
        return [name, count, numbers, "", "", ""]
    compiled, ran, whole = numbers
    return [name, count, compiled, ran, count / ran, whole]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epicbox-python", default=str(HERE / ".venv-epicbox/bin/python"))
    parser.add_argument("--epicbox-tests", type=int, default=20)
    args = parser.parse_args()
    n = args.tests
    print(machine())
    print(f"A+B in C++, {n} tests per run, median of {args.rounds} runs; times in seconds\n")
    rows = [
        row("executor fork mode (runc)", n, await executor_row(n, args.rounds, mode="fork")),
        row("executor fresh container (runc)", n, await executor_row(n, args.rounds)),
    ]
    if runsc_registered():
        # gVisor's pids limit also caps the sandbox's own host threads: 128 is too few here.
        numbers = await executor_row(n, args.rounds, mode="fork", runtime="runsc", pids_limit=512)
        rows.append(row("executor fork mode (gVisor)", n, numbers))
    rows.append(row("subprocess loop, host g++, no sandbox", n, subprocess_row(n, args.rounds)))
    rows.append(
        row(
            "epicbox 1.1.0, a container per test",
            args.epicbox_tests,
            epicbox_row(args.epicbox_python, args.epicbox_tests),
        )
    )
    headers = ["judge", "tests", "compile s", "tests s", "tests/s", "whole run s"]
    print(table(headers, rows))
    left = bench_leftovers()
    assert not left, f"containers left behind: {left}"


if __name__ == "__main__":
    anyio.run(main)
