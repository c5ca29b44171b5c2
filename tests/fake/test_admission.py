"""Admission control: container starts per engine are capped and queue in order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from executor.testing import FakeEngine

if TYPE_CHECKING:
    from .conftest import Make


async def test_starts_in_flight_never_exceed_max_starting(make: Make) -> None:
    """40 concurrent fresh calls on an engine with max_starting=3: never more than 3 starting."""
    engine = FakeEngine()
    engine.delay("create", 0.01)
    async with make(engine, max_starting=3) as ex:
        results = await ex.execute_many(range(40), concurrency=40)
    assert results == list(range(40))
    assert engine.max_starting_seen <= 3
    assert ex.engines[0]["max_starting"] == 3


async def test_default_limit_is_the_engine_cpu_count(make: Make) -> None:
    """Without max_starting the limit is what the engine reports as its CPU count."""
    engine = FakeEngine(cpus=4)
    engine.delay("create", 0.01)
    async with make(engine) as ex:
        await ex.execute_many(range(20), concurrency=20)
        assert ex.engines[0]["max_starting"] == 4
    assert engine.max_starting_seen <= 4


async def test_refills_share_the_limit_with_callers(make: Make) -> None:
    """Pool refills and on-demand starts together stay within max_starting."""
    engine = FakeEngine()
    engine.delay("start", 0.01)
    async with make(engine, mode="pool", containers=8, max_starting=2) as ex:
        await ex.execute_many(range(30), concurrency=10)
    assert engine.max_starting_seen <= 2


async def test_waiting_calls_are_served_in_order(make: Make) -> None:
    """Calls queued for a start slot get it first come, first served."""
    order: list[int] = []

    def record(value: Any) -> Any:
        order.append(value)
        return value

    engine = FakeEngine(record)
    engine.delay("create", 0.02)
    async with make(engine, max_starting=1) as ex, anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(ex.execute, i)
            await anyio.sleep(0.001)
    assert order == sorted(order)
