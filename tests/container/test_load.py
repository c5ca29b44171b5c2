"""Under load: outcomes that mean what they say, in every mode, at 3x the engine's start pace.

A storm of calls much larger than the engine can start at once (concurrency 24 against the
default admission limit of one start per engine CPU) mixes trivial tasks, sleeps past the
timeout, user errors, memory bombs and a large input. Every call must end as its task
deserves: the trivial ones succeed, the sleepers time out, the bombs are OOM-killed, the user
errors fail as such. Waiting for the engine never counts against a task (``start_timeout`` is
separate), so nothing else is allowed. Outcomes are asserted, never times.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import ContainerFailed, ExecutionFailed, ExecutionTimeout, StartTimeout

from ._support import case, containers

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

TASK = """
import time


def execute(input):
    kind = input["kind"]
    if kind == "sleep":
        time.sleep(60)
    if kind == "raise":
        raise ValueError("asked to fail")
    if kind == "bomb":
        hog = []
        while True:
            hog.append(bytearray(8 * 1024 * 1024))
    if kind == "big":
        return {"kind": kind, "size": len(input["blob"])}
    return {"kind": kind}
"""
FILES = {"/app/execute.py": TASK}
MODES: dict[str, dict[str, Any]] = {
    "fresh": {},
    "pool": {"mode": "pool", "containers": 4},
    "reuse": {"mode": "reuse", "containers": 4},
    "fork": {"mode": "fork", "containers": 2},
}


def storm() -> list[dict[str, Any]]:
    inputs: list[dict[str, Any]] = []
    inputs += [{"kind": "trivial"}] * 40
    inputs += [{"kind": "raise"}] * 12
    inputs += [{"kind": "sleep"}] * 4
    inputs += [{"kind": "bomb"}] * 4
    inputs += [{"kind": "big", "blob": "x" * (20 * 1024 * 1024)}] * 4
    # Interleave the kinds so every phase of the storm sees each of them.
    return [inputs[(i * 7) % len(inputs)] for i in range(len(inputs))]


def outcome(result: Any) -> str:
    if isinstance(result, dict):
        return f"ok:{result['kind']}"
    if isinstance(result, ExecutionTimeout):
        return "timeout"
    if isinstance(result, ContainerFailed):
        return result.code
    if isinstance(result, ExecutionFailed):
        return result.code
    return f"unexpected:{result!r}"


@pytest.mark.parametrize("mode", list(MODES))
async def test_storm_outcomes_mean_what_they_say(make_executor: MakeExecutor, mode: str) -> None:
    """64 mixed calls at concurrency 24: each ends as its task deserves; nothing leaks."""
    labels = case()
    inputs = storm()
    ex = make_executor(
        files=FILES,
        labels=labels,
        timeout=4,
        memory_bytes=128 * 1024 * 1024,
        max_output_bytes=1024 * 1024,
        **MODES[mode],
    )
    async with ex:
        with anyio.fail_after(280):
            results = await ex.execute_many(inputs, concurrency=24, return_exceptions=True)
    expected = {
        "trivial": "ok:trivial",
        "big": "ok:big",
        "raise": "USER_ERROR",
        "sleep": "timeout",
        "bomb": "OOM_KILLED",
    }
    wrong = collections.Counter(
        (item["kind"], outcome(result))
        for item, result in zip(inputs, results, strict=True)
        if outcome(result) != expected[item["kind"]]
    )
    assert not wrong, f"{mode}: unexpected outcomes {dict(wrong)}"
    with anyio.fail_after(30):
        while left := containers(labels):
            await anyio.sleep(0.2)
    assert not left


async def test_start_timeout_is_raised_and_the_request_never_delivered(
    make_executor: MakeExecutor, tmp_path: Any
) -> None:
    """A saturated single worker and a tiny start_timeout: StartTimeout (safe to retry), and
    the second task's side effect never happened."""
    marks = tmp_path / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    task = (
        "import pathlib, time\n"
        "def execute(input):\n"
        "    pathlib.Path('/marks', input['name']).write_text('ran')\n"
        "    time.sleep(input['sleep'])\n"
        "    return input['name']\n"
    )
    labels = case()
    ex = make_executor(
        files={"/app/execute.py": task},
        labels=labels,
        mounts=[f"{marks}:/marks:rw"],
        mode="reuse",
        containers=1,
        prewarm=True,  # the worker's own start is not under test (nor under start_timeout)
        start_timeout=0.5,
        on_empty="wait",
    )
    async with ex:
        assert await ex.execute({"name": "warm", "sleep": 0}) == "warm"
        async with anyio.create_task_group() as tg:
            tg.start_soon(ex.execute, {"name": "busy", "sleep": 3})
            with anyio.fail_after(10):
                while not (marks / "busy").exists():
                    await anyio.sleep(0.02)
            with pytest.raises(StartTimeout) as info:
                await ex.execute({"name": "never", "sleep": 0})
    assert info.value.code == "START_TIMEOUT"
    assert info.value.delivered is False
    assert "safe to retry" in info.value.message
    assert not (marks / "never").exists()
    with anyio.fail_after(30):
        while left := containers(labels):
            await anyio.sleep(0.2)
    assert not left
