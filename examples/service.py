"""A FastAPI-style async service holding one executor for its whole life.

No web framework needed: ``App`` has the ``startup``/``shutdown`` hooks and a ``lifespan``
context manager shaped like FastAPI's, and ``handle_stats`` is the coroutine a route would
call. With FastAPI you would write ``app = FastAPI(lifespan=lifespan)`` and
``@app.post("/stats") async def stats(body: Input) -> Output: return await handle_stats(...)``.

Run it as a script to simulate a few concurrent requests::

    .venv/bin/python examples/service.py            # in-process (LocalExecutor)
    .venv/bin/python examples/service.py --container  # in containers, two kept warm
"""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from executor import (
    ContainerConfig,
    ContainerExecutor,
    Executor,
    ExecutorError,
    LocalExecutor,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

HERE = Path(__file__).resolve().parent


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


async def stats(inp: Input) -> Output:
    total = sum(inp.values)
    return Output(count=len(inp.values), sum=total, mean=total / len(inp.values))


class App:
    """The application state: one executor, created at startup and closed at shutdown."""

    def __init__(self, *, container: bool = False) -> None:
        self.container = container
        self.executor: Executor[Input, Output] | None = None

    async def startup(self) -> None:
        if self.container:
            config = ContainerConfig(
                "executor/runner-python:latest",
                files={"/app/execute.py": (HERE / "stats.py").read_text()},
                pool_size=2,  # two containers started ahead of the requests
                prewarm=True,
                timeout=10,
            )
            executor: Executor[Input, Output] = ContainerExecutor[Input, Output](config)
        else:
            executor = LocalExecutor[Input, Output](stats)
        self.executor = await executor.__aenter__()

    async def shutdown(self) -> None:
        if self.executor is not None:
            await self.executor.aclose()
            self.executor = None


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[None]:
    """What ``FastAPI(lifespan=...)`` expects: start up, serve, shut down."""
    await app.startup()
    try:
        yield
    finally:
        await app.shutdown()


async def handle_stats(app: App, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The route handler: ``(status, JSON body)``; bad input is a 422, a failed task a 500."""
    assert app.executor is not None, "the app has not started"
    try:
        output = await app.executor.execute(body)
    except ExecutorError as exc:
        status = 422 if exc.code == "INPUT_INVALID" else 500
        return status, {"error": exc.to_dict()}
    return 200, msgspec.to_builtins(output)


async def main(container: bool) -> None:
    app = App(container=container)
    requests = [{"values": [1, 2, 3]}, {"values": [10, 20]}, {"values": "oops"}, {"values": [4]}]
    async with lifespan(app):
        results: list[tuple[int, dict[str, Any]]] = [(0, {})] * len(requests)

        async def one(i: int, body: dict[str, Any]) -> None:
            results[i] = await handle_stats(app, body)

        async with anyio.create_task_group() as tg:
            for i, body in enumerate(requests):
                tg.start_soon(one, i, body)
    for body, (status, reply) in zip(requests, results, strict=True):
        shown = reply["error"]["code"] if status != 200 else reply
        print(f"POST /stats {msgspec.json.encode(body).decode():<22} -> {status} {shown}")


if __name__ == "__main__":
    anyio.run(main, "--container" in sys.argv[1:])
