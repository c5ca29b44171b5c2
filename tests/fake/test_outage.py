"""An engine outage in a long-lived process: what a closed executor left is swept later."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from executor import ContainerConfig, ContainerExecutor, EngineUnavailable, reap
from executor.container import sweeper
from executor.engine import INSTANCE_LABEL, MANAGED_LABEL, OWNER_LABEL, owner_id
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


async def test_one_container_handed_over_leaves_its_instance_open() -> None:
    """hand_over(container=...) marks that container an orphan for reap() and removes it once
    the engine answers; the other containers of its instance stay, the instance stays open."""
    engine = FakeEngine()
    labels = {MANAGED_LABEL: "true", OWNER_LABEL: owner_id(), INSTANCE_LABEL: "sweep-one"}
    doomed = await engine.create({"Image": "x", "Labels": labels})
    kept = await engine.create({"Image": "x", "Labels": labels})
    answers = threading.Event()

    def connect() -> FakeEngine:
        if not answers.is_set():
            raise EngineUnavailable("not yet", engine=engine.name)
        return engine

    sweeper.hand_over(engine.name, "sweep-one", connect, container=doomed)
    assert "sweep-one" not in sweeper.closed_instances()
    assert (engine.name, "sweep-one") in sweeper.pending()
    assert doomed in sweeper.abandoned_containers()
    assert await reap(engine=engine) == [doomed]
    answers.set()
    assert await anyio.to_thread.run_sync(sweeper.wait_idle, 10.0)
    assert engine.live() == [kept] and doomed not in sweeper.abandoned_containers()
    await engine.remove(kept)
