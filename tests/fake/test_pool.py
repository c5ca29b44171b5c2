"""The warm pool and workers over the fake engine: refill, death, idleness, cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import ExecutorClosed, StartTimeout
from executor.testing import FakeEngine

if TYPE_CHECKING:
    from .conftest import Make


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (the pool refills in the background)."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


async def test_prewarm_fills_and_calls_refill(make: Make) -> None:
    """prewarm starts `containers` containers; each call consumes one and a new one starts."""
    engine = FakeEngine()
    async with make(engine, mode="pool", containers=3, prewarm=True) as ex:
        pool = ex._pool
        assert pool is not None and pool.idle == 3
        for i in range(5):
            assert await ex.execute(i) == i
        await until(lambda: pool.idle == 3)
        assert engine.created == 3 + 5
        assert repr(pool).startswith("<Pool single-use size=3 idle=3")


async def test_a_container_that_died_idle_is_replaced_not_used(make: Make) -> None:
    """An idle container whose process ended is dropped and replaced; the call succeeds."""
    engine = FakeEngine()
    async with make(engine, mode="pool", containers=1, prewarm=True) as ex:
        pool = ex._pool
        assert pool is not None
        (victim,) = pool.idle_ids()
        await engine.remove(victim)  # dies while idle (removed behind our back)
        assert await ex.execute("ok") == "ok"
        assert pool.replaced_dead == 1


async def test_max_idle_recycles_stale_containers(make: Make) -> None:
    """Containers idle longer than max_idle are replaced by fresh ones."""
    engine = FakeEngine()
    async with make(engine, mode="pool", containers=2, prewarm=True, max_idle=0.2) as ex:
        pool = ex._pool
        assert pool is not None
        first = set(pool.idle_ids())
        await until(
            lambda: pool.recycled_idle >= 2 and pool.idle == 2 and not first & set(pool.idle_ids())
        )


async def test_reuse_workers_serve_max_uses_then_are_replaced(make: Make) -> None:
    """A reused worker serves max_uses calls, then a new one takes over."""
    engine = FakeEngine()
    async with make(engine, mode="reuse", containers=0, max_uses=3) as ex:
        for i in range(7):
            await ex.execute(i)
        assert engine.created >= 3
        pool = ex._pool
        assert pool is not None and pool.recycled_used == 2


async def test_on_empty_wait_waits_for_a_pooled_container(make: Make) -> None:
    """on_empty='wait': calls beyond the pool wait for a replacement, never launch their own."""
    engine = FakeEngine()
    engine.delay("start", 0.05)
    async with make(engine, mode="pool", containers=1, prewarm=True, on_empty="wait") as ex:
        results = await ex.execute_many(range(4), concurrency=4)
        assert results == [0, 1, 2, 3]
        assert engine.max_starting_seen <= 1


async def test_start_timeout_when_the_pool_stays_busy_is_never_delivered(make: Make) -> None:
    """A call that cannot get a container in time raises StartTimeout; it never ran."""

    async def slow(value: Any) -> Any:
        await anyio.sleep(1.0)
        return value

    engine = FakeEngine(slow)
    async with make(engine, mode="reuse", containers=1, start_timeout=0.2, on_empty="wait") as ex:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ex.execute, "first")
            await until(lambda: engine.requests == 1)
            with pytest.raises(StartTimeout) as info:
                await ex.execute("second")
        error = info.value
        assert error.code == "START_TIMEOUT" and isinstance(error, TimeoutError)
        assert error.delivered is False and error.waiting >= 1
        assert "safe to retry" in error.message
        assert engine.requests == 1  # "second" never reached a container


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"mode": "pool", "containers": 2},
        {"mode": "reuse", "containers": 0},
        {"mode": "fork", "containers": 1},
    ],
)
async def test_cancellation_mid_call_leaves_nothing(make: Make, settings: dict[str, Any]) -> None:
    """A call cancelled while its task runs: its container is removed (shielded), nothing leaks."""
    blocked = anyio.Event()

    async def forever(value: Any) -> Any:
        blocked.set()
        await anyio.sleep_forever()

    engine = FakeEngine(forever)
    ex = make(engine, **settings)
    with anyio.move_on_after(0.2):
        await ex.execute(1)
    assert blocked.is_set()
    await ex.aclose()
    assert engine.live() == []


async def test_close_while_calls_are_running(make: Make) -> None:
    """aclose() during calls in flight: the calls end (result or error), nothing is left."""

    async def slow(value: Any) -> Any:
        await anyio.sleep(0.2)
        return value

    engine = FakeEngine(slow)
    ex = make(engine, mode="pool", containers=2)
    outcomes: list[Any] = []

    async def call(i: int) -> None:
        try:
            outcomes.append(await ex.execute(i))
        except Exception as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(call, i)
        await until(lambda: engine.requests >= 1)
        await ex.aclose()
    assert len(outcomes) == 4
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert errors, "aclose() removed the containers of the running calls"
    assert all(isinstance(e, ExecutorClosed) for e in errors), errors  # not "removed by someone"
    assert engine.live() == []
