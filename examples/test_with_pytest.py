"""Testing your own task with pytest, using the fixtures that come with the package.

Copy this file into your project; run it with ``pytest examples/test_with_pytest.py`` (this
repository's suite runs it too, from tests/cli/test_examples.py). It needs ``pytest-asyncio``
(auto or strict mode) and, for the container tests, a Docker engine with
``executor/runner-python:latest``: without one they are skipped with the reason, or fail
under ``pytest --executor-require-engine`` (or ``EXECUTOR_REQUIRE_DOCKER=1``), as CI wants.

The plugin (``executor.pytest_plugin``, loaded through its entry point) gives
``container_executor`` and ``local_executor``: async factories whose executors are entered,
closed after the test, and, for containers, checked for leftovers (a test that leaves a
container behind fails); ``executor_engine`` is the default engine itself. A fixture of
your own may just as well use ``async with``, as ``reused_stats`` below does: pytest-asyncio
runs a fixture's set-up and tear-down in different tasks, which is fine, since an executor's
background work runs in a task of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
import pytest_asyncio

from executor import ContainerConfig, ContainerExecutor, ExecutionFailed, InputValidationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from executor.engine import Engine
    from executor.pytest_plugin import ContainerExecutorFactory, LocalExecutorFactory

TASK = Path(__file__).resolve().parent / "stats.py"


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


@pytest_asyncio.fixture
async def stats_executor(
    container_executor: ContainerExecutorFactory,
) -> ContainerExecutor[Input, Output]:
    """The task in its real image; closed, and checked for leftovers, after each test."""
    config = ContainerConfig(
        "executor/runner-python:latest",
        files={"/app/execute.py": TASK.read_text()},
        timeout=20,
    )
    return await container_executor(config, input_type=Input, output_type=Output)


@pytest.mark.asyncio
async def test_mean_of_values(stats_executor: ContainerExecutor[Input, Output]) -> None:
    """The task returns count, sum and mean."""
    output = await stats_executor.execute({"values": [1, 2, 3, 4]})
    assert output == Output(count=4, sum=10.0, mean=2.5)


@pytest.mark.asyncio
async def test_bad_input_never_reaches_the_container(
    stats_executor: ContainerExecutor[Input, Output],
) -> None:
    """Input that does not match Input is refused before any container starts."""
    with pytest.raises(InputValidationError) as info:
        await stats_executor.execute({"values": "not a list"})
    assert info.value.path == "$.values"


@pytest.mark.asyncio
async def test_task_error_is_reported(stats_executor: ContainerExecutor[Input, Output]) -> None:
    """An exception inside the task comes back as ExecutionFailed with the runner's code."""
    with pytest.raises(ExecutionFailed) as info:
        await stats_executor.execute({"values": []})  # mean of nothing: ZeroDivisionError
    assert info.value.code == "USER_ERROR"
    assert "ZeroDivisionError" in (info.value.details or "")


def halve(value: float) -> float:
    return value / 2


@pytest.mark.asyncio
async def test_in_process_with_the_local_factory(local_executor: LocalExecutorFactory) -> None:
    """local_executor makes an in-process executor (no engine needed), closed afterwards."""
    ex = await local_executor(halve, input_type=float, output_type=float)
    assert await ex.execute(3) == 1.5


@pytest_asyncio.fixture
async def reused_stats(executor_engine: Engine) -> AsyncIterator[ContainerExecutor[Input, Output]]:
    """A fixture of your own: ``async with`` around ``yield``, on the engine fixture's engine
    (which skips the test when no engine answers). One reused worker serves every call."""
    config = ContainerConfig(
        "executor/runner-python:latest",
        files={"/app/execute.py": TASK.read_text()},
        mode="reuse",
        containers=1,
        prewarm=True,
    )
    async with ContainerExecutor[Input, Output](config, engine=executor_engine) as ex:
        yield ex


@pytest.mark.asyncio
async def test_a_fixture_of_your_own(reused_stats: ContainerExecutor[Input, Output]) -> None:
    """The worker started in the fixture's set-up serves the test's calls."""
    outputs = [await reused_stats.execute({"values": [n, n]}) for n in range(5)]
    assert [o.mean for o in outputs] == [0, 1, 2, 3, 4]
