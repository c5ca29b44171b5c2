"""``executor.engine.protect``: a step (a container create, a remove) runs to its end whatever
cancels its caller, and the cancellation is delivered afterwards, as the canceller expects."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from executor.engine import cleanup, protect


class Step:
    """A step that takes ``seconds`` and records whether it finished."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.finished = False

    async def __call__(self, value: int) -> int:
        await asyncio.sleep(self.seconds)
        self.finished = True
        return value * 2


async def caller(step: Step, after: list[str]) -> int | None:
    result = await protect(step, 21)
    after.append("returned")
    await asyncio.sleep(0)  # the deferred cancellation lands at the next await
    after.append("not cancelled")
    return result


async def test_step_result_and_error_come_back() -> None:
    assert await protect(Step(0), 21) == 42

    async def failing() -> None:
        raise ValueError("engine said no")

    with pytest.raises(ValueError, match="engine said no"):
        await protect(failing)
    assert await protect(Step(5), 1, timeout=0.05) is None  # bounded


@pytest.mark.parametrize("cancels", [1, 2, 3])
async def test_task_cancel_waits_for_the_step_then_cancels(cancels: int) -> None:
    step, after = Step(0.2), []
    task = asyncio.ensure_future(caller(step, after))
    await asyncio.sleep(0.05)
    for _ in range(cancels):
        task.cancel()
        await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert step.finished and after == ["returned"]


async def test_asyncio_timeout_and_wait_for_still_raise_timeout_error() -> None:
    step, after = Step(0.2), []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await caller(step, after)
    assert step.finished and after == ["returned"]
    step = Step(0.2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(caller(step, []), 0.05)
    assert step.finished


async def test_task_group_cancellation_is_delivered_once_the_step_is_done() -> None:
    step, after = Step(0.2), []

    async def fail_soon() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("a sibling failed")

    with pytest.raises(ExceptionGroup):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(caller(step, after))
            tg.create_task(fail_soon())
    assert step.finished and after == ["returned"]


async def test_anyio_scopes_wait_for_the_step_and_still_cancel() -> None:
    step, after = Step(0.2), []
    with anyio.move_on_after(0.05) as scope:
        await caller(step, after)
    assert scope.cancelled_caught and step.finished and after == ["returned"]
    step = Step(0.2)
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.05):
            await caller(step, [])
    assert step.finished


async def test_cleanup_reports_and_never_raises_executor_errors() -> None:
    from executor import EngineUnavailable

    async def engine_down() -> None:
        raise EngineUnavailable("no engine")

    assert await cleanup(Step(0), 1) is True
    assert await cleanup(engine_down) is False
    assert await cleanup(Step(5), 1, timeout=0.05) is False
