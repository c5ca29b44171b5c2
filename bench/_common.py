"""Shared measurement helpers for the benchmarks (not part of the library)."""

from __future__ import annotations

import asyncio
import io
import os
import platform
import statistics
import subprocess
import tarfile
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiodocker

BENCH_LABEL = "executor.bench"
#: The stock runner images: the Python and Node ones have no task of their own (NO_TASK).
STOCK_PYTHON_IMAGE = os.environ.get("EXECUTOR_PYTHON_IMAGE", "executor/runner-python:latest")
STOCK_NODE_IMAGE = os.environ.get("EXECUTOR_NODE_IMAGE", "executor/runner-node:latest")
GO_IMAGE = os.environ.get("EXECUTOR_GO_IMAGE", "executor/runner-go:latest")
#: Where the stock images look for the task module, and an echo task for each.
ECHO_TASKS = {
    "/app/execute.py": b"def execute(input):\n    return input\n",
    "/app/execute.mjs": b"export function executeFunction(input) {\n  return input;\n}\n",
}


def echo_image(stock: str, module: str) -> str:
    """``stock`` with the echo task at ``module``: what every benchmark calls (built once,
    then cached by the engine; the stock image itself is returned when no engine answers)."""
    # The whole name: a variant (EXECUTOR_PYTHON_IMAGE=executor-x/runner-python) must not
    # share its echo image's tag with the stock image's.
    tag = f"executor-bench/echo-{stock.replace('/', '-').replace(':', '-')}:latest"
    dockerfile = f"FROM {stock}\nCOPY execute {module}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("execute", ECHO_TASKS[module])):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    try:
        done = subprocess.run(
            ["docker", "build", "-q", "-t", tag, "-"],
            input=context.getvalue(),
            capture_output=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return stock
    return tag if done.returncode == 0 else stock


PYTHON_IMAGE = echo_image(STOCK_PYTHON_IMAGE, "/app/execute.py")
NODE_IMAGE = echo_image(STOCK_NODE_IMAGE, "/app/execute.mjs")
ECHO_INPUT = {"values": [1.0, 2.0, 3.0, 4.0, 5.0]}
REQUEST = b'{"schema_in":null,"schema_out":null,"input":{"values":[1.0,2.0,3.0,4.0,5.0]}}\n'


def machine() -> str:
    """One line describing this machine and software."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, Docker {docker or 'n/a'}"
    )


def summary(samples: list[float]) -> dict[str, float]:
    """p50 / p95 / max in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": statistics.median(ordered) * 1e3,
        "p95": p95 * 1e3,
        "max": ordered[-1] * 1e3,
        "n": len(ordered),
    }


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    """Seconds one awaited call takes."""
    t0 = time.perf_counter()
    await call()
    return time.perf_counter() - t0


async def cli_call(image: str, payload: bytes = REQUEST) -> bytes:
    """`docker run -i --rm IMAGE` with the request on stdin (the CLI path users know)."""
    proc = await asyncio.create_subprocess_exec(
        "docker",
        "run",
        "-i",
        "--rm",
        "--network",
        "none",
        "--label",
        f"{BENCH_LABEL}=1",
        image,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(payload)
    if proc.returncode != 0 or b'"ok":true' not in out:
        raise RuntimeError(f"docker run failed: {err[-300:]!r}")
    return out


async def handwritten_call(docker: aiodocker.Docker, image: str, payload: bytes = REQUEST) -> bytes:
    """The minimal aiodocker sequence: create, attach, start, write + EOF, read, wait, remove."""
    container = await docker.containers.create(
        config={
            "Image": image,
            "OpenStdin": True,
            "StdinOnce": True,
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "Labels": {BENCH_LABEL: "1"},
            "HostConfig": {"NetworkMode": "none"},
        }
    )
    try:
        stream = container.attach(stdin=True, stdout=True, stderr=True)
        async with stream:
            await container.start()
            await stream.write_in(payload)
            resp = stream._resp
            assert resp is not None and resp.connection is not None
            transport = resp.connection.transport
            assert transport is not None
            transport.write_eof()
            out = b""
            while (message := await stream.read_out()) is not None:
                if message.stream == 1:
                    out += message.data
        await container.wait()
    finally:
        await container.delete(force=True)
    if b'"ok":true' not in out:
        raise RuntimeError(f"unexpected output {out[:200]!r}")
    return out


def bench_leftovers() -> list[str]:
    """Containers left by benchmark runs (label executor.bench)."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split()


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
