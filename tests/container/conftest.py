"""Fixtures for tests that run containers on a real engine.

Every container a test makes carries the label ``executor.test-run=<RUN_ID>``; at the end of
the session a check fails the run if any such container remains. ``make_executor`` builds
executors with that label and closes them in ``finally``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from executor import ContainerConfig, ContainerExecutor

RUN_ID = os.environ.get("EXECUTOR_TEST_RUN", uuid.uuid4().hex[:12])
RUN_LABEL = "executor.test-run"
PYTHON_IMAGE = os.environ.get("EXECUTOR_PYTHON_IMAGE", "executor/runner-python:latest")
NODE_IMAGE = os.environ.get("EXECUTOR_NODE_IMAGE", "executor/runner-node:latest")
GO_IMAGE = os.environ.get("EXECUTOR_GO_IMAGE", "executor/runner-go:latest")
#: A bind mount giving the stock Python image (which has no task) an echo task, for tests
#: that must run the image itself, with no derived ``files=`` image.
ECHO_MOUNT = f"{Path(__file__).resolve().parent / 'tasks' / 'echo.py'}:/app/execute.py:ro"
JUDGE_IMAGE = os.environ.get("EXECUTOR_JUDGE_IMAGE", "executor/runner-judge:latest")

pytestmark = pytest.mark.docker


def leftover_containers() -> list[str]:
    """Ids of containers (running or not) labelled by this test run."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={RUN_LABEL}={RUN_ID}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split()


def config(image: str = PYTHON_IMAGE, **kwargs: Any) -> ContainerConfig:
    """A ContainerConfig labelled for this run."""
    labels = {RUN_LABEL: RUN_ID, **kwargs.pop("labels", {})}
    return ContainerConfig(image, labels=labels, **kwargs)


MakeExecutor = Callable[..., ContainerExecutor[Any, Any]]


@pytest.fixture
async def make_executor() -> AsyncIterator[MakeExecutor]:
    """Factory: ``make_executor(image=..., **config)`` → executor closed after the test."""
    made: list[ContainerExecutor[Any, Any]] = []

    def make(image: str = PYTHON_IMAGE, **kwargs: Any) -> ContainerExecutor[Any, Any]:
        types = {k: kwargs.pop(k) for k in ("input_type", "output_type") if k in kwargs}
        executor: ContainerExecutor[Any, Any] = ContainerExecutor(config(image, **kwargs), **types)
        made.append(executor)
        return executor

    try:
        yield make
    finally:
        for executor in made:
            await executor.aclose()


@pytest.fixture(scope="session", autouse=True)
def no_leftover_containers() -> Any:
    """After the whole session, no container labelled by this run may remain."""
    yield
    left = leftover_containers()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
    assert not left, f"containers left behind by the test run: {left}"
