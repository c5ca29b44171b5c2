"""Errors of real container calls cross processes by their public ``executor.X`` names."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from executor import ExecutionFailed, TaskError

if TYPE_CHECKING:
    from .conftest import MakeExecutor

TASK = "def execute(value):\n    raise ValueError('no ' + str(value))\n"

LOAD = (
    "import pickle, sys\n"
    "error = pickle.load(sys.stdin.buffer)\n"
    "print(type(error).__module__, type(error).__name__, error.code, error.retryable)\n"
)


async def test_a_container_error_unpickles_in_another_process(make_executor: MakeExecutor) -> None:
    """The ExecutionFailed of a container call pickles by ``executor.ExecutionFailed`` and loads
    in a fresh process with its class, code and retryable."""
    ex = make_executor(files={"/app/execute.py": TASK}, timeout=30)
    with pytest.raises(ExecutionFailed) as info:
        await ex.execute(1)
    error = info.value
    assert (
        isinstance(error, TaskError) and repr(type(error)) == "<class 'executor.ExecutionFailed'>"
    )
    done = subprocess.run(
        [sys.executable, "-c", LOAD],
        input=pickle.dumps(error),
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.decode().split() == ["executor", "ExecutionFailed", error.code, "False"]
