"""Fork mode (``mode="fork"``) on Podman: the runner as PID 1, one container, fresh state per call.

Needs runners that speak fork mode (docs/RUNNERS.md, pinned by ``tests/vectors/fork_*.json``):
in a checkout without those vectors it skips, saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from executor import ExecutionTimeout

if TYPE_CHECKING:
    from ..container.conftest import MakeExecutor

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        not list((Path(__file__).parents[1] / "vectors").glob("fork_*.json")),
        reason="the runners' fork mode is not in this checkout yet (no tests/vectors/fork_*.json)",
    ),
]

TASK = r"""
import os
import time

calls = 0


def execute(input):
    global calls
    calls += 1
    seen = os.path.exists("/tmp/left-behind")
    with open("/tmp/left-behind", "w") as fh:
        fh.write("x")
    if input == "sleep":
        time.sleep(3600)
    return {"calls": calls, "seen": seen, "pid1": open("/proc/1/comm").read().strip()}
"""
FILES = {"/app/execute.py": TASK}


async def test_fork_mode_calls_start_from_a_clean_state(make_executor: MakeExecutor) -> None:
    """Three calls on one fork-mode worker each see the state right after import."""
    ex = make_executor(files=FILES, mode="fork", containers=1)
    async with ex:
        runs = [await ex.run("go") for _ in range(3)]
    outputs: list[Any] = [run.output for run in runs]
    assert [(o["calls"], o["seen"]) for o in outputs] == [(1, False)] * 3
    assert len({run.container_id for run in runs}) == 1


async def test_fork_mode_timeout_then_a_clean_call(make_executor: MakeExecutor) -> None:
    """A call over its timeout is TIMEOUT, and the next call starts from a clean state."""
    ex = make_executor(files=FILES, mode="fork", containers=1, timeout=2)
    async with ex:
        assert (await ex.execute("go"))["calls"] == 1
        with pytest.raises(ExecutionTimeout):
            await ex.execute("sleep")
        after = await ex.execute("go")
    assert (after["calls"], after["seen"]) == (1, False)
