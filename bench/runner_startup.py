"""Cold start of each runner: `docker run -i --rm` with the echo input, and the image sizes.

    .venv/bin/python bench/runner_startup.py [--runs 5] [--lockdown]

Prints one table: per image, the median/min/max wall time of a whole `docker run -i --rm`
(create, start, answer, exit, remove) and, for comparison in the same process, the same
request answered by the runner as a plain host process (python / node / go binary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ECHO_TASKS, GO_IMAGE, NODE_IMAGE, PYTHON_IMAGE

ROOT = Path(__file__).resolve().parent.parent
REQUEST = json.dumps({"schema_in": None, "schema_out": None, "input": {"hello": "world"}}).encode()
LOCKDOWN = ["--read-only", "--network", "none", "--cap-drop", "ALL", "--tmpfs", "/tmp"]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        argv, input=REQUEST, capture_output=True, env=env, timeout=120, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or json.loads(done.stdout) != {
        "ok": True,
        "output": {"hello": "world"},
    }:
        raise SystemExit(f"{argv}: unexpected result {done.stdout!r} {done.stderr!r}")
    return elapsed


def size_mb(image: str) -> str:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{int(out.stdout) / 1e6:.1f}"


def row(label: str, size: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"| {label:<40} | {size:>8} | {statistics.median(ms):>8.0f} "
        f"| {min(ms):>6.0f} | {max(ms):>6.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lockdown", action="store_true", help="add the executor's lockdown flags")
    parser.add_argument("--runtime", default=None, help="e.g. runsc")
    args = parser.parse_args()

    extra = LOCKDOWN if args.lockdown else []
    if args.runtime:
        extra = [*extra, "--runtime", args.runtime]
    server = subprocess.run(
        ["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"docker {server}, runs={args.runs}, flags={' '.join(extra) or '(none)'}"
    )
    print(f"| {'runner':<40} | {'size MB':>8} | {'median ms':>8} | {'min':>6} | {'max':>6} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 11}|{'-' * 8}|{'-' * 8}|")
    # The stock Python and Node images have no task: the echo images add one (bench/_common.py).
    images = {
        "runner-python": PYTHON_IMAGE,
        "runner-node": NODE_IMAGE,
        "runner-go": GO_IMAGE,
        "generator-orval": "executor/generator-orval:latest",
    }
    with tempfile.TemporaryDirectory() as tmp:
        echo_py, echo_mjs = Path(tmp) / "echo.py", Path(tmp) / "echo.mjs"
        echo_py.write_bytes(ECHO_TASKS["/app/execute.py"])
        echo_mjs.write_bytes(ECHO_TASKS["/app/execute.mjs"])
        Path(tmp).chmod(0o755)
        for name, image in images.items():
            argv = ["docker", "run", "-i", "--rm", *extra, image]
            if name == "generator-orval":
                # Its execute needs a spec; time the runner start-up with an echo module instead.
                argv = [
                    "docker", "run", "-i", "--rm", *extra,
                    "-v", f"{echo_mjs}:/app/execute.mjs:ro", image,
                ]  # fmt: skip
            timed(argv)  # warm the page cache; cold start means a new container, not a cold disk
            samples = [timed(argv) for _ in range(args.runs)]
            print(row(f"docker run {name}", size_mb(image), samples))

        host: list[tuple[str, list[str], dict[str, str]]] = [
            ("host python3 runner.py", [sys.executable, str(ROOT / "runners/python/runner.py")],
             {"EXECUTOR_MODULE": str(echo_py)}),
        ]  # fmt: skip
        if shutil.which("node"):
            host.append(
                ("host node (run.sh)", [str(ROOT / "runners/node/run.sh")],
                 {"EXECUTOR_MODULE": str(echo_mjs)})
            )  # fmt: skip
        if shutil.which("go"):
            binary = Path(tmp) / "runner"
            subprocess.run(
                ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "./cmd/runner"],
                cwd=ROOT / "runners/go",
                env={**os.environ, "CGO_ENABLED": "0"},
                check=True,
            )
            host.append(("host go runner binary", [str(binary)], {}))
        for label, argv, env in host:
            full_env = {**os.environ, **env}
            timed(argv, full_env)
            print(row(label, "-", [timed(argv, full_env) for _ in range(args.runs)]))


if __name__ == "__main__":
    main()
