"""``ContainerExecutor.stream`` against the real engine: lines live and in order, the Execution
last, timeouts as in ``run()``, and nothing left behind when the stream is cancelled."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import Execution, ExecutionTimeout, LogLine

from ._support import case, containers
from .conftest import NODE_IMAGE

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

TICKER = """
import sys, time

def execute(input):
    for i in range(input["lines"]):
        print(f"tick {i}", flush=True)          # stdout: the runner sends it to stderr
        sys.stderr.write(f"err {i}\\n")
        sys.stderr.flush()
        time.sleep(input.get("pause", 0))
    time.sleep(input.get("hang", 0))
    return input["lines"]
"""
NODE_TICKER = """
export async function executeFunction(input) {
  for (let i = 0; i < input.lines; i++) {
    console.log(`tick ${i}`);
    await new Promise((resolve) => setTimeout(resolve, input.pause * 1000));
  }
  return input.lines;
}
"""
MODES: list[dict[str, Any]] = [
    {},
    {"mode": "pool", "containers": 1},
    {"mode": "reuse", "containers": 0},
    {"mode": "fork", "containers": 1},
]


async def events_of(ex: Any, value: Any) -> tuple[list[tuple[float, LogLine]], Execution[Any]]:
    """Every event with the host time it was received."""
    lines: list[tuple[float, LogLine]] = []
    final: Execution[Any] | None = None
    async with ex.stream(value) as events:
        async for event in events:
            if isinstance(event, LogLine):
                assert final is None
                lines.append((time.perf_counter(), event))
            else:
                final = event
    assert final is not None
    return lines, final


@pytest.mark.parametrize("mode", MODES, ids=["fresh", "pool", "reuse", "fork"])
async def test_lines_are_streamed_live_and_in_order(
    make_executor: MakeExecutor, mode: dict[str, Any]
) -> None:
    """Each line arrives while the task still runs (0.3 s apart), in the order written, and the
    Execution closes the stream with the same lines in its logs."""
    ex = make_executor(files={"/app/execute.py": TICKER}, **mode)
    async with ex:
        lines, final = await events_of(ex, {"lines": 4, "pause": 0.3})
        done = time.perf_counter()
    texts = [line.text for _, line in lines]
    assert texts == [f"{kind} {i}" for i in range(4) for kind in ("tick", "err")]
    assert {line.stream for _, line in lines} == {"stderr"}
    assert done - lines[0][0] > 0.6, "the first line came only at the end"
    times = [line.time for _, line in lines]
    assert times == sorted(times)
    assert final.output == 4
    assert final.logs == "".join(f"{t}\n" for t in texts)


async def test_node_runner_streams_too(make_executor: MakeExecutor) -> None:
    """console.log lines of a Node task arrive live as well."""
    ex = make_executor(NODE_IMAGE, files={"/app/execute.mjs": NODE_TICKER})
    lines, final = await events_of(ex, {"lines": 3, "pause": 0.3})
    assert [line.text for _, line in lines] == ["tick 0", "tick 1", "tick 2"]
    assert final.output == 3


@pytest.mark.parametrize("mode", MODES, ids=["fresh", "pool", "reuse", "fork"])
async def test_cancel_mid_stream_leaves_nothing(
    make_executor: MakeExecutor, mode: dict[str, Any]
) -> None:
    """A stream cancelled after its first line kills the call's container (fork mode: the
    call's processes; the container is wiped and serves on) and the executor stays usable."""
    labels = case()
    ex = make_executor(files={"/app/execute.py": TICKER}, labels=labels, **mode)
    async with ex:
        with anyio.move_on_after(60) as scope:
            async with ex.stream({"lines": 1, "hang": 3600}) as events:
                async for event in events:
                    assert isinstance(event, LogLine)
                    scope.cancel()
        assert scope.cancelled_caught
        assert (await ex.execute({"lines": 0})) == 0
    assert containers(labels) == []


async def test_timeout_raises_from_the_stream(make_executor: MakeExecutor) -> None:
    """A call overrunning its timeout raises ExecutionTimeout from the iteration, after the
    lines it wrote; its container is gone."""
    labels = case()
    ex = make_executor(files={"/app/execute.py": TICKER}, labels=labels, timeout=1)
    seen: list[str] = []
    with pytest.raises(ExecutionTimeout):
        async with ex.stream({"lines": 1, "hang": 3600}) as events:
            async for event in events:
                assert isinstance(event, LogLine)
                seen.append(event.text)
    assert seen == ["tick 0", "err 0"]
    await ex.aclose()
    assert containers(labels) == []
