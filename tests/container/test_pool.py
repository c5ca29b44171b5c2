"""Warm pool and reusable workers against a real engine."""

from __future__ import annotations

import subprocess
from typing import Any

import aiodocker
import anyio
import pytest

from executor import ContainerExecutor, ExecutionTimeout

from .conftest import PYTHON_IMAGE, RUN_ID, RUN_LABEL, MakeExecutor, config, leftover_containers

pytestmark = pytest.mark.docker

ECHO = "def execute(input):\n    return input\n"
SLEEPY = """
import time

def execute(input):
    time.sleep(input.get("sleep", 0))
    return input
"""
COUNTER = """
calls = 0

def execute(input):
    global calls
    calls += 1
    return {"calls": calls, "input": input}
"""


async def wait_for(predicate: Any, *, timeout: float = 20.0) -> None:
    """Poll ``predicate()`` until true (bounded)."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


async def test_prewarm_fills_pool_and_refills_after_use(make_executor: MakeExecutor) -> None:
    """A prewarmed pool holds `containers` started containers and refills after each call."""
    ex = make_executor(files={"/app/execute.py": ECHO}, mode="pool", containers=2, prewarm=True)
    async with ex:
        pool = ex._pool
        assert pool is not None
        assert pool.idle == 2
        before = set(pool.idle_ids())
        assert await ex.execute({"n": 1}) == {"n": 1}
        await wait_for(lambda: pool.idle == 2)
        after = set(pool.idle_ids())
        assert len(before - after) == 1, "exactly the used container was replaced"
    assert leftover_containers() == []


async def test_each_pooled_container_serves_one_call(make_executor: MakeExecutor) -> None:
    """Single-use pool: every call lands in a different container (no state is shared)."""
    ex = make_executor(files={"/app/execute.py": COUNTER}, mode="pool", containers=2, prewarm=True)
    async with ex:
        ids = set()
        for i in range(4):
            result = await ex.run({"i": i})
            assert result.output == {"calls": 1, "input": {"i": i}}
            ids.add(result.container_id)
        assert len(ids) == 4


async def test_idle_container_that_dies_is_replaced(make_executor: MakeExecutor) -> None:
    """A pooled container killed from outside while idle is never handed to a caller."""
    ex = make_executor(files={"/app/execute.py": ECHO}, mode="pool", containers=1, prewarm=True)
    async with ex:
        pool = ex._pool
        assert pool is not None
        victim = pool.idle_ids()[0]
        async with aiodocker.Docker() as docker:
            await docker.containers.container(victim).kill()
        await wait_for(lambda: not any(c.attachment.alive() for _, c in pool._idle))
        result = await ex.run({"after": "kill"})
        assert result.output == {"after": "kill"}
        assert result.container_id != victim
        assert pool.replaced_dead >= 1


@pytest.mark.parametrize("mode", ["reuse", "fork"])
async def test_worker_removed_just_before_a_call_is_replaced_not_written_to(
    make_executor: MakeExecutor, mode: str
) -> None:
    """`docker rm -f` of an idle worker by another process, the next call at once: the end of
    stream already on the socket is read before the lease, so the call runs on a new worker
    instead of failing WORKER_LOST on the removed one."""
    ex = make_executor(files={"/app/execute.py": ECHO}, mode=mode, containers=1)
    for round in range(3):
        first = await ex.run({"round": round})
        # Blocking on purpose: the event loop gets no turn between the removal and the call,
        # as when another process removes the container while this one is busy.
        subprocess.run(["docker", "rm", "-f", first.container_id], check=True, capture_output=True)
        after = await ex.run({"round": round, "after": "rm"})
        assert after.output == {"round": round, "after": "rm"}
        assert after.container_id != first.container_id


async def test_cancelled_call_does_not_poison_pool(make_executor: MakeExecutor) -> None:
    """Cancelling a pooled call kills only its container; the pool refills and still works."""
    ex = make_executor(files={"/app/execute.py": SLEEPY}, mode="pool", containers=2, prewarm=True)
    async with ex:
        pool = ex._pool
        assert pool is not None
        with anyio.move_on_after(1.0) as scope:
            await ex.execute({"sleep": 3600})
        assert scope.cancelled_caught
        await wait_for(lambda: pool.idle == 2)
        assert await ex.execute({"ok": True}) == {"ok": True}
    assert leftover_containers() == []


async def test_pooled_timeout_kills_only_that_container(make_executor: MakeExecutor) -> None:
    """A timeout in pooled mode raises ExecutionTimeout and leaves the other idle ones alone."""
    ex = make_executor(
        files={"/app/execute.py": SLEEPY}, mode="pool", containers=2, prewarm=True, timeout=5.0
    )
    async with ex:
        pool = ex._pool
        assert pool is not None
        untouched = pool.idle_ids()[1]
        with pytest.raises(ExecutionTimeout):
            await ex.execute({"sleep": 3600})
        await wait_for(lambda: pool.idle == 2)
        assert untouched in pool.idle_ids()


async def test_reuse_serves_many_calls_per_container(make_executor: MakeExecutor) -> None:
    """mode="reuse" keeps one warm worker and its state across calls, up to max_uses."""
    ex = make_executor(files={"/app/execute.py": COUNTER}, mode="reuse", containers=0, max_uses=3)
    async with ex:
        results = [await ex.run(i) for i in range(7)]
    counts = [r.output["calls"] for r in results]
    assert counts == [1, 2, 3, 1, 2, 3, 1]
    ids = [r.container_id for r in results]
    assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4] == ids[5] != ids[6]
    assert leftover_containers() == []


async def test_reuse_timeout_kills_only_that_worker(make_executor: MakeExecutor) -> None:
    """In reuse mode a timed-out worker is replaced; the next call gets a fresh one."""
    ex = make_executor(files={"/app/execute.py": SLEEPY}, mode="reuse", containers=0, timeout=5.0)
    async with ex:
        first = await ex.run({"sleep": 0})
        with pytest.raises(ExecutionTimeout):
            await ex.execute({"sleep": 3600})
        second = await ex.run({"sleep": 0})
        assert second.container_id != first.container_id
    assert leftover_containers() == []


async def test_reuse_survives_user_errors(make_executor: MakeExecutor) -> None:
    """A task error in serve mode is reported and the worker keeps serving."""
    src = (
        "def execute(input):\n"
        "    if input == 'boom':\n"
        "        raise ValueError('boom')\n"
        "    return input\n"
    )
    ex = make_executor(files={"/app/execute.py": src}, mode="reuse", containers=0)
    async with ex:
        first = await ex.run("a")
        with pytest.raises(Exception, match="boom") as info:
            await ex.execute("boom")
        assert getattr(info.value, "code", None) == "USER_ERROR"
        again = await ex.run("b")
        assert again.container_id == first.container_id


async def test_aclose_removes_idle_containers() -> None:
    """aclose() removes every idle pooled container and waits for background removals."""
    ex: ContainerExecutor[Any, Any] = ContainerExecutor(
        config(
            PYTHON_IMAGE, files={"/app/execute.py": ECHO}, mode="pool", containers=3, prewarm=True
        )
    )
    async with ex:
        assert ex._pool is not None and ex._pool.idle == 3
        await ex.execute(1)
    assert leftover_containers() == []


async def test_on_empty_wait_waits_for_refill(make_executor: MakeExecutor) -> None:
    """With on_empty='wait' a call on an empty pool waits for a pooled container."""
    ex = make_executor(files={"/app/execute.py": ECHO}, mode="pool", containers=1, on_empty="wait")
    async with ex:
        results = await ex.execute_many(range(4), concurrency=2)
        assert results == [0, 1, 2, 3]
        assert ex._pool is not None and ex._pool.launched >= 4


async def test_map_streams_in_completion_order_with_bounded_in_flight(
    make_executor: MakeExecutor,
) -> None:
    """map yields results as they complete and never runs more than `concurrency` at once."""
    ex = make_executor(files={"/app/execute.py": SLEEPY}, mode="reuse", containers=0)
    in_flight = peak = 0
    original = ex.execute

    async def counting(item: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await original(item)
        finally:
            in_flight -= 1

    ex.execute = counting  # type: ignore[method-assign]
    # The first input is slow, the rest fast: the first result must not come first.
    inputs = [{"sleep": 2.0}] + [{"sleep": 0} for _ in range(9)]
    async with ex:
        order = [index async for index, _ in ex.map(inputs, concurrency=3)]
    assert sorted(order) == list(range(10))
    assert order[0] != 0 and order[-1] == 0
    assert peak <= 3
    assert leftover_containers() == []


def test_run_label_is_applied() -> None:
    """Executors built by the test config carry the run label (the leftover check relies on it)."""
    assert config().labels[RUN_LABEL] == RUN_ID


async def test_max_idle_recycles_stale_containers(make_executor: MakeExecutor) -> None:
    """A pooled container idle longer than max_idle is replaced by a fresh one."""
    ex = make_executor(
        files={"/app/execute.py": ECHO}, mode="pool", containers=1, prewarm=True, max_idle=0.5
    )
    async with ex:
        pool = ex._pool
        assert pool is not None
        first = pool.idle_ids()[0]
        await wait_for(lambda: pool.recycled_idle >= 1 and pool.idle == 1)
        assert pool.idle_ids()[0] != first
        assert await ex.execute("still works") == "still works"
    assert leftover_containers() == []


@pytest.mark.slow
async def test_more_than_100_live_attachments(make_executor: MakeExecutor) -> None:
    """Over 100 containers attached at once do not exhaust the engine client's connections."""
    src = "import time\n\ndef execute(input):\n    time.sleep(1)\n    return input\n"
    ex = make_executor(files={"/app/execute.py": src}, mode="reuse", containers=0, timeout=180)
    async with ex:
        with anyio.fail_after(170):
            results = await ex.execute_many(range(105), concurrency=105)
    assert results == list(range(105))
    assert leftover_containers() == []


async def test_executor_entered_in_one_task_closed_in_another() -> None:
    """A pooled executor entered in one task can be closed from another (pytest fixtures)."""
    ex: ContainerExecutor[Any, Any] = ContainerExecutor(
        config(
            PYTHON_IMAGE, files={"/app/execute.py": ECHO}, mode="pool", containers=1, prewarm=True
        )
    )
    entered = anyio.Event()

    async def enter() -> None:
        await ex.__aenter__()
        entered.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(enter)
    await entered.wait()
    assert await ex.execute({"x": 1}) == {"x": 1}
    async with anyio.create_task_group() as tg:
        tg.start_soon(ex.aclose)
    assert leftover_containers() == []


async def test_pool_without_async_with_refills_and_closes() -> None:
    """A pooled executor used without `async with` still refills, and aclose() cleans up."""
    ex: ContainerExecutor[Any, Any] = ContainerExecutor(
        config(PYTHON_IMAGE, files={"/app/execute.py": ECHO}, mode="pool", containers=1)
    )
    try:
        assert await ex.execute(1) == 1
        pool = ex._pool
        assert pool is not None
        await wait_for(lambda: pool.idle == 1)
        assert await ex.execute(2) == 2
    finally:
        await ex.aclose()
    assert leftover_containers() == []
