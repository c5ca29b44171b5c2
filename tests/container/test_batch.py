"""Batches of container calls: ``execute_many`` on fresh containers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from executor import ExecutionFailed

from ._support import case, containers

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

SQUARE = """
import os


def execute(input):
    if input.get("fail"):
        raise RuntimeError("input " + str(input["i"]) + " fails")
    return {"i": input["i"], "square": input["i"] ** 2, "host": os.uname().nodename}
"""


async def test_execute_many_20_with_concurrency_8_in_order(make_executor: MakeExecutor) -> None:
    """execute_many of 20 inputs at concurrency 8 returns every result in input order."""
    labels = case()
    ex = make_executor(files={"/app/execute.py": SQUARE}, labels=labels)
    async with ex:
        results = await ex.execute_many([{"i": i} for i in range(20)], concurrency=8)
    assert [r["i"] for r in results] == list(range(20))
    assert [r["square"] for r in results] == [i * i for i in range(20)]
    assert len({r["host"] for r in results}) == 20  # a fresh container per call
    assert containers(labels) == []  # leaving `async with` awaited the background removals


async def test_execute_many_returns_failures_in_place(make_executor: MakeExecutor) -> None:
    """With return_exceptions=True a failing input's error sits at its index among the results."""
    labels = case()
    ex = make_executor(files={"/app/execute.py": SQUARE}, labels=labels)
    inputs = [{"i": i, "fail": i == 3} for i in range(6)]
    async with ex:
        results = await ex.execute_many(inputs, concurrency=3, return_exceptions=True)
    failure = results[3]
    assert isinstance(failure, ExecutionFailed)
    assert failure.code == "USER_ERROR"
    assert "input 3 fails" in failure.message
    assert [r["square"] for i, r in enumerate(results) if i != 3] == [0, 1, 4, 16, 25]
    assert containers(labels) == []
