"""Every mode over the fake engine: results, errors, what the containers saw, closing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import (
    ConfigError,
    ContainerFailed,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorClosed,
    ImageNotFound,
)
from executor.testing import Crash, FakeEngine, log

if TYPE_CHECKING:
    from .conftest import Make

MODES: dict[str, dict[str, Any]] = {
    "fresh": {},
    "pool": {"mode": "pool", "containers": 2},
    "reuse": {"mode": "reuse", "containers": 0},
    "fork": {"mode": "fork", "containers": 1},
}


def task(value: Any) -> Any:
    if value == "crash":
        raise Crash(3)
    if value == "oom":
        raise Crash(oom=True)
    if value == "raise":
        raise ValueError("asked to fail")
    log(f"saw {value}")
    return {"echo": value}


@pytest.mark.parametrize("mode", MODES)
async def test_results_logs_and_errors_in_every_mode(make: Make, mode: str) -> None:
    """Outputs, logs, user errors, crashes and OOM map the same way in every mode."""
    engine = FakeEngine(task)
    async with make(engine, **MODES[mode]) as ex:
        run = await ex.run(1)
        assert run.output == {"echo": 1}
        assert run.logs == "saw 1\n"
        assert run.engine == engine.name
        with pytest.raises(ExecutionFailed) as failed:
            await ex.execute("raise")
        assert failed.value.code == "USER_ERROR"
        with pytest.raises(ContainerFailed) as crashed:
            await ex.execute("crash")
        assert (crashed.value.code, crashed.value.exit_code) == ("EXIT_NONZERO", 3)
        with pytest.raises(ContainerFailed) as oom:
            await ex.execute("oom")
        assert oom.value.code == "OOM_KILLED"
        assert await ex.execute(2) == {"echo": 2}


@pytest.mark.parametrize("mode", MODES)
async def test_every_mode_raises_closed_after_aclose(make: Make, mode: str) -> None:
    """After aclose() a call raises ExecutorClosed (code CLOSED) in every mode."""
    engine = FakeEngine()
    ex = make(engine, **MODES[mode])
    assert await ex.execute(1) == 1
    await ex.aclose()
    with pytest.raises(ExecutorClosed) as info:
        await ex.execute(1)
    assert info.value.code == "CLOSED"
    assert engine.live() == []
    await ex.aclose()  # idempotent


async def test_container_modes_reach_the_runner_as_configured(make: Make) -> None:
    """Fresh and pooled containers get one request each; reuse and fork keep their process."""
    engine = FakeEngine()
    async with make(engine) as fresh:
        for i in range(3):
            await fresh.execute(i)
    assert engine.created == 3
    fork_engine = FakeEngine()
    async with make(fork_engine, mode="fork", containers=1) as fork:
        for i in range(5):
            await fork.execute(i)
        (only,) = fork_engine.live()
        body = fork_engine.container(only)["body"]
        assert "EXECUTOR_SERVE=fork" in body["Env"]
        assert fork_engine.container(only)["requests"] == 5


async def test_timeout_in_fork_mode_keeps_the_container(make: Make) -> None:
    """A fork-mode call that overruns gets ExecutionTimeout on time; its container serves on."""

    async def slow(value: Any) -> Any:
        if value == "sleep":
            await anyio.sleep(30)
        return value

    engine = FakeEngine(slow)
    async with make(engine, mode="fork", containers=1, timeout=0.3) as ex:
        assert await ex.execute("warm") == "warm"
        with anyio.fail_after(5):
            with pytest.raises(ExecutionTimeout):
                await ex.execute("sleep")
        assert await ex.execute("after") == "after"
        assert engine.created == 1


async def test_timeout_in_fresh_mode_kills_the_container(make: Make) -> None:
    """A fresh call that overruns is ExecutionTimeout and its container is removed at once."""

    async def slow(value: Any) -> Any:
        await anyio.sleep(30)

    engine = FakeEngine(slow)
    ex = make(engine, timeout=0.2)
    with pytest.raises(ExecutionTimeout) as info:
        await ex.execute(1)
    assert info.value.code == "TIMEOUT"
    assert engine.live() == []


async def test_missing_image_and_trio(make: Make) -> None:
    """A missing image is ImageNotFound naming the build command; nothing is created."""
    engine = FakeEngine(images=set())
    ex = make(engine)
    with pytest.raises(ImageNotFound) as info:
        await ex.execute(1)
    assert "executor images build" in info.value.message or "pulled" in info.value.message
    assert engine.created == 0


def test_container_executor_under_trio_is_a_clear_config_error() -> None:
    """ContainerExecutor is asyncio-only: under trio it says so with ConfigError."""
    pytest.importorskip("trio")
    from executor import ContainerConfig, ContainerExecutor

    async def main() -> None:
        ex: ContainerExecutor[Any, Any] = ContainerExecutor(
            ContainerConfig("fake/runner:latest"), engine=FakeEngine()
        )
        with pytest.raises(ConfigError, match="asyncio"):
            await ex.execute(1)

    anyio.run(main, backend="trio")
