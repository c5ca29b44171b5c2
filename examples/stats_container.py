"""The stats example run in a locked-down container (the seed's ContainerExecutor example).

``examples/stats.py`` becomes the Python runner's ``/app/execute.py``; the container has no
network, a read-only root filesystem, 256 MiB of memory and runs as uid 1000. Needs a Docker
engine and the runner image (``make build-runner-python``). Run it with ``make demo`` or
``.venv/bin/python examples/stats_container.py``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec

from executor import ContainerConfig, ContainerExecutor

HERE = Path(__file__).resolve().parent


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


config = ContainerConfig(
    "executor/runner-python:latest",
    files={"/app/execute.py": (HERE / "stats.py").read_text()},
    network=False,  # the defaults, spelled out
    read_only=True,
    memory_bytes=256 * 1024 * 1024,
    timeout=10,
)


async def main() -> None:
    async with ContainerExecutor[Input, Output](config) as ex:
        output = await ex.execute(Input(values=[1.0, 2.0, 3.0, 4.0, 5.0]))
    print(f"container: sum={output.sum} mean={output.mean}  {msgspec.json.encode(output).decode()}")


if __name__ == "__main__":
    anyio.run(main)
