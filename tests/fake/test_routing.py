"""Several fake engines: routing by load and capacity, failover, retry only if undelivered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import EngineUnavailable, ExecutionFailed
from executor.testing import Crash, FakeEngine

if TYPE_CHECKING:
    from .conftest import Make


async def slow(value: Any) -> Any:
    await anyio.sleep(0.05)
    return value


async def test_calls_spread_by_capacity(make: Make) -> None:
    """An engine with twice the capacity gets about twice the concurrent calls."""
    small, big = (
        FakeEngine(slow, name="fake://small"),
        FakeEngine(slow, name="fake://big", capacity=2),
    )
    async with make([small, big]) as ex:
        await ex.execute_many(range(60), concurrency=6)
        assert small.created + big.created == 60
        assert 1.5 <= big.created / small.created <= 2.5
        assert {e["engine"] for e in ex.engines} == {"fake://small", "fake://big"}


async def test_undelivered_call_is_retried_once_on_another_engine(make: Make) -> None:
    """A create failure (request never sent) retries on the other engine; the call succeeds."""
    a, b = FakeEngine(name="fake://a"), FakeEngine(name="fake://b")
    a.fail("create", times=100)
    async with make([a, b]) as ex:
        results = await ex.execute_many(range(4), concurrency=1)
        assert results == [0, 1, 2, 3]
        assert b.requests == 4 and a.requests == 0
        statuses = {e["engine"]: e for e in ex.engines}
        assert statuses["fake://a"]["up"] is False


async def test_undelivered_everywhere_fails_after_two_tries(make: Make) -> None:
    """When both engines fail before delivery the call raises EngineUnavailable (one retry)."""
    a, b = FakeEngine(name="fake://a"), FakeEngine(name="fake://b")
    a.fail("create", times=10)
    b.fail("create", times=10)
    ex = make([a, b])
    with pytest.raises(EngineUnavailable):
        await ex.execute(1)
    assert a.operations["create"] + b.operations["create"] == 2


async def test_a_delivered_call_is_never_retried(make: Make) -> None:
    """A container that dies after receiving the request fails the call; no second engine."""
    seen: list[str] = []

    def once(value: Any) -> Any:
        seen.append(value)
        raise Crash(1)

    a, b = FakeEngine(once, name="fake://a"), FakeEngine(once, name="fake://b")
    ex = make([a, b])
    with pytest.raises(Exception) as info:
        await ex.execute("x")
    assert getattr(info.value, "code", None) == "EXIT_NONZERO"
    assert seen == ["x"]


async def test_engine_down_then_back_is_taken_back_and_swept(make: Make) -> None:
    """An engine marked down is pinged back up; its dead containers are swept."""
    a, b = FakeEngine(slow, name="fake://a"), FakeEngine(slow, name="fake://b")
    async with make([a, b], health_interval=0.05) as ex:
        await ex.execute_many(range(4), concurrency=2)
        a.go_down()
        results = await ex.execute_many(range(6), concurrency=2, return_exceptions=True)
        assert all(r in range(6) or isinstance(r, EngineUnavailable) for r in results)
        a.come_back()
        with anyio.fail_after(5):
            while not all(e["up"] for e in ex.engines):
                await anyio.sleep(0.02)
        before = a.created
        await ex.execute_many(range(10), concurrency=4)
        assert a.created > before


async def test_user_errors_do_not_mark_an_engine_down(make: Make) -> None:
    """A task that raises is the task's failure, not the engine's."""

    def bad(value: Any) -> Any:
        raise ValueError("no")

    a, b = FakeEngine(bad, name="fake://a"), FakeEngine(bad, name="fake://b")
    ex = make([a, b])
    for _ in range(4):
        with pytest.raises(ExecutionFailed):
            await ex.execute(1)
    assert all(e["up"] for e in ex.engines)


async def test_an_undelivered_failure_says_so(make: Make) -> None:
    """EngineUnavailable for a call that never reached a container carries delivered=False
    and says it is retryable."""
    engine = FakeEngine()
    engine.fail("create", times=5)
    ex = make(engine)
    with pytest.raises(EngineUnavailable) as info:
        await ex.execute(1)
    assert info.value.delivered is False
    assert info.value.to_dict()["delivered"] is False
    assert info.value.retryable is True and info.value.to_dict()["retryable"] is True
