"""An engine outage in a long-lived process: what a closed executor left is swept later."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from executor import ContainerConfig, ContainerExecutor, EngineUnavailable, reap
from executor.container import sweeper
from executor.testing import FakeEngine


async def test_leftovers_of_an_executor_closed_during_an_outage_are_removed() -> None:
    """Closed while the engine is down: its containers are removed once the engine is back."""

    async def slow(value: Any) -> Any:
        await anyio.sleep(0.05)
        return value

    engine = FakeEngine(slow)
    ex: ContainerExecutor[Any, Any] = ContainerExecutor(
        ContainerConfig("fake/runner:latest", mode="pool", containers=3, prewarm=True),
        engine=engine,
    )
    async with ex:
        await ex.execute_many(range(6), concurrency=3)
        with anyio.fail_after(5):
            while len(engine.live()) < 3:  # the pool refilled after the batch
                await anyio.sleep(0.01)
        engine.go_down()
        with pytest.raises(EngineUnavailable):
            await ex.execute(1)
    assert engine.live(), "the outage should have kept some containers"
    engine.come_back()
    assert await anyio.to_thread.run_sync(sweeper.wait_idle, 10.0)
    assert engine.live() == []


async def test_reap_removes_containers_of_closed_executors_of_this_process() -> None:
    """reap() treats containers of this process's closed executors as orphans."""
    engine = FakeEngine()
    ex: ContainerExecutor[Any, Any] = ContainerExecutor(
        ContainerConfig("fake/runner:latest", mode="reuse", containers=0), engine=engine
    )
    await ex.execute(1)
    engine.go_down()
    await ex.aclose()
    engine.come_back()
    left = engine.live()
    removed = await reap(engine=engine)
    assert set(left) <= set(removed) | set(engine.live()) and engine.live() == []
