"""The mode by name over the fake engine: each mode's source, its default and given
``containers``, the old keywords still working, and engine objects given to the executor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import ConfigError, ContainerConfig, ContainerExecutor
from executor.container.sources import ForkWorkers, Fresh, Pool, Workers
from executor.testing import FakeEngine

if TYPE_CHECKING:
    from .conftest import Make


async def gated(value: Any) -> Any:
    """Hold the call until the test releases it (``{"wait": True}``)."""
    if isinstance(value, dict) and value.get("wait"):
        await GATE.wait()
    return value


GATE = anyio.Event()


@pytest.mark.parametrize(
    ("mode", "source", "idle"),
    [("fresh", Fresh, 0), ("pool", Pool, 4), ("reuse", Workers, 4), ("fork", ForkWorkers, 4)],
)
async def test_each_mode_name_has_its_source_and_default_count(
    make: Make, mode: str, source: type, idle: int
) -> None:
    """mode= picks the source; prewarm starts the mode's default number of containers."""
    engine = FakeEngine()
    async with make(engine, mode=mode, prewarm=True) as ex:
        core = ex._router.cores[0]
        assert type(core.source) is source
        assert core.source.idle == idle
        assert await ex.execute({"n": 1}) == {"n": 1}
        assert ex.config.mode == mode


@pytest.mark.parametrize("mode", ["reuse", "fork"])
async def test_worker_modes_cap_their_containers_at_containers(make: Make, mode: str) -> None:
    """In reuse and fork mode, containers=2 caps the workers: six concurrent calls share two."""
    global GATE
    GATE = anyio.Event()
    engine = FakeEngine(gated)
    async with make(engine, mode=mode, containers=2) as ex:
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(ex.execute, {"wait": True, "i": i})
            with anyio.fail_after(5):
                while ex._pool is None or ex._pool.busy < 2 or ex._pool.waiting < 4:
                    await anyio.sleep(0.01)
            GATE.set()
        assert engine.created == 2


async def test_reuse_with_zero_containers_has_no_cap(make: Make) -> None:
    """mode="reuse", containers=0 (the old reuse=True): a worker per concurrent call, none
    started ahead, each kept for the next call."""
    global GATE
    GATE = anyio.Event()
    engine = FakeEngine(gated)
    async with make(engine, mode="reuse", containers=0, prewarm=True) as ex:
        assert engine.created == 0
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(ex.execute, {"wait": True, "i": i})
            with anyio.fail_after(5):
                while ex._pool is None or ex._pool.busy < 3:
                    await anyio.sleep(0.01)
            GATE.set()
        assert engine.created == 3
        assert ex._pool is not None and ex._pool.idle == 3


async def test_old_fork_keyword_still_runs_in_fork_mode(make: Make) -> None:
    """reuse="fork" (deprecated) warns and runs calls in fork workers, one container."""
    engine = FakeEngine()
    with pytest.warns(DeprecationWarning, match="use mode='fork', containers=1"):
        ex = make(engine, reuse="fork")
    async with ex:
        assert [await ex.execute(i) for i in range(3)] == [0, 1, 2]
        assert isinstance(ex._router.cores[0].source, ForkWorkers)
        assert engine.created == 1


async def test_engine_objects_go_to_the_executor() -> None:
    """engines=[...] on the executor takes Engine objects (kept open: they are the caller's)
    and spreads calls over them."""
    one, two = FakeEngine(name="fake://one"), FakeEngine(name="fake://two")
    config = ContainerConfig("fake/runner:latest", timeout=10)
    async with ContainerExecutor(config, engines=[one, two]) as ex:
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(ex.execute, i)
        assert {s["engine"] for s in ex.engines} == {"fake://one", "fake://two"}
        assert one.created and two.created
    await one.ping()  # still open: the executor closes only what it made
    assert one.live() == two.live() == []


@pytest.mark.parametrize(
    ("config", "kwargs", "match"),
    [
        ({}, {"engine": "x", "engines": ["y"]}, "either engine= or engines="),
        ({"engines": ["unix:///a.sock"]}, {"engines": ["unix:///b.sock"]}, "given twice"),
        ({"docker_url": "unix:///a.sock"}, {"engine": None, "engines": ["u"]}, "given twice"),
        ({}, {"engines": []}, "non-empty list"),
        ({}, {"engine": "unix:///a.sock"}, r"engine= must be an Engine"),
    ],
)
def test_engines_given_twice_or_wrongly_are_refused(
    config: dict[str, Any], kwargs: dict[str, Any], match: str
) -> None:
    """Engines come from one place, config or executor; a wrong one is a ConfigError."""
    with pytest.raises(ConfigError, match=match):
        ContainerExecutor(ContainerConfig("fake/runner:latest", **config), **kwargs)
