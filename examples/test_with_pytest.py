"""Testing your own task with pytest-asyncio and a ContainerExecutor fixture.

Copy this file into your project; run it with ``pytest examples/test_with_pytest.py`` (this
repository's suite runs it too, from tests/cli/test_examples.py). It needs
``pytest-asyncio`` and a Docker engine with ``executor/runner-python:latest``.
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

TASK = Path(__file__).resolve().parent / "stats.py"


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


@pytest_asyncio.fixture
async def stats_executor() -> AsyncIterator[ContainerExecutor[Input, Output]]:
    """One executor per test, closed afterwards (which removes every container it made).

    Not ``async with``: pytest-asyncio runs a fixture's setup and teardown in different tasks,
    and the executor's context (a task group) must be left in the task that entered it.
    Without it, used containers are removed inline; ``aclose()`` releases the rest.
    """
    config = ContainerConfig(
        "executor/runner-python:latest",
        files={"/app/execute.py": TASK.read_text()},
        timeout=20,
    )
    ex = ContainerExecutor[Input, Output](config)
    try:
        yield ex
    finally:
        await ex.aclose()


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
