"""Logging: lifecycle events at INFO/WARNING with structured fields, per-call detail at DEBUG."""

from __future__ import annotations

import json
import logging
import socket
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import (
    ContainerConfig,
    ContainerExecutor,
    EngineUnavailable,
    ExecutionTimeout,
    reap,
)
from executor.container import sweeper
from executor.engine import MANAGED_LABEL, OWNER_LABEL
from executor.testing import FakeEngine

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the executor loggers from INFO up."""
    caplog.set_level(logging.INFO, logger="executor")
    yield caplog


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def container(
    engine: FakeEngine | list[FakeEngine], **settings: Any
) -> ContainerExecutor[Any, Any]:
    settings.setdefault("timeout", 10)
    if isinstance(engine, list):
        return ContainerExecutor(ContainerConfig("fake/runner:latest", **settings), engines=engine)
    return ContainerExecutor(ContainerConfig("fake/runner:latest", **settings), engine=engine)


async def slow(value: Any) -> Any:
    if value == "sleep":
        await anyio.sleep(30)
    return value


async def until(condition: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


def test_the_library_installs_no_output_handler() -> None:
    """Only a NullHandler on ``executor`` (so nothing prints unless the app configures it)."""
    handlers = [
        handler
        for name in ("executor", "executor.engine", "executor.container", "executor.pool")
        for handler in logging.getLogger(name).handlers
    ]
    assert [type(h) for h in handlers] == [logging.NullHandler]


async def test_calls_log_at_debug_only_with_their_fields(caplog: pytest.LogCaptureFixture) -> None:
    """Each call is one DEBUG record with engine, container id, code and duration; at INFO a
    run of good calls logs nothing."""
    caplog.set_level(logging.INFO, logger="executor")
    async with container(FakeEngine()) as ex:
        await ex.execute(1)
    assert caplog.records == []
    caplog.set_level(logging.DEBUG, logger="executor")
    async with container(FakeEngine(name="fake://dbg")) as ex:
        await ex.execute(1)
    (record,) = events(caplog, "call")
    assert record.levelno == logging.DEBUG and record.name == "executor.container"
    assert (record.engine, record.code) == ("fake://dbg", "OK")  # type: ignore[attr-defined]
    assert record.container_id.startswith("fake")  # type: ignore[attr-defined]
    assert 0 < record.duration < 5  # type: ignore[attr-defined]
    assert record.pathname.endswith("core.py")  # the call site, not the helper


async def test_debug_off_builds_no_per_call_record(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DEBUG off the per-call helper is never even called (no formatting on the hot path)."""
    caplog.set_level(logging.INFO, logger="executor")

    def forbidden(*args: object) -> None:
        raise AssertionError("per-call logging ran with DEBUG off")

    monkeypatch.setattr("executor.container.core.call_done", forbidden)
    async with container(FakeEngine(), mode="reuse", containers=0) as ex:
        assert await ex.execute_many(range(20)) == list(range(20))


async def test_records_serialise_as_json(logs: pytest.LogCaptureFixture) -> None:
    """The structured fields are plain attributes a JSON formatter can dump."""
    async with container(FakeEngine(slow), timeout=0.1) as ex:
        with pytest.raises(ExecutionTimeout):
            await ex.execute("sleep")
    (record,) = events(logs, "container.timeout")
    fields = ("event", "engine", "container_id", "code", "duration")
    line = json.dumps({key: getattr(record, key) for key in fields})
    assert json.loads(line)["code"] == "TIMEOUT"


async def test_timeout_and_cancellation_kill_the_container(logs: pytest.LogCaptureFixture) -> None:
    """An overrun is a WARNING naming the container; a cancelled call's kill is INFO."""
    async with container(FakeEngine(slow), timeout=0.2) as ex:
        with pytest.raises(ExecutionTimeout):
            await ex.execute("sleep")
        with anyio.move_on_after(0.05):
            await ex.execute("sleep")
    (timeout,) = events(logs, "container.timeout")
    assert timeout.levelno == logging.WARNING and "is killed" in timeout.getMessage()
    assert timeout.duration == 0.2  # type: ignore[attr-defined]
    (killed,) = events(logs, "container.killed")
    assert killed.levelno == logging.INFO
    assert killed.code == "CANCELLED"  # type: ignore[attr-defined]
    assert killed.container_id != timeout.container_id  # type: ignore[attr-defined]


async def test_fork_mode_timeout_says_the_container_serves_on(
    logs: pytest.LogCaptureFixture,
) -> None:
    """In fork mode the overrun is logged, and the container is not called killed."""
    async with container(FakeEngine(slow), mode="fork", containers=1, timeout=0.2) as ex:
        with pytest.raises(ExecutionTimeout):
            await ex.execute("sleep")
        assert await ex.execute("after") == "after"
    (record,) = events(logs, "container.timeout")
    assert "serves on" in record.getMessage()
    assert events(logs, "pool.replaced") == []


async def test_engine_down_retry_and_back(logs: pytest.LogCaptureFixture) -> None:
    """An engine failing before delivery: WARNING down, WARNING retry elsewhere, INFO back."""
    a, b = FakeEngine(name="fake://a"), FakeEngine(name="fake://b")
    a.fail("create", times=1)
    async with container([a, b], health_interval=0.05) as ex:
        for _ in range(4):
            await ex.execute(1)
        await until(lambda: all(e["up"] for e in ex.engines))
    (down,) = events(logs, "engine.down")
    assert (down.name, down.levelno) == ("executor.engine", logging.WARNING)
    assert (down.engine, down.code) == ("fake://a", "ENGINE_UNAVAILABLE")  # type: ignore[attr-defined]
    (retry,) = events(logs, "call.retry")
    assert (retry.name, retry.engine) == ("executor.routing", "fake://a")  # type: ignore[attr-defined]
    (up,) = events(logs, "engine.up")
    assert up.levelno == logging.INFO and up.duration >= 0  # type: ignore[attr-defined]


async def test_refill_failure_is_logged_once_then_recovery(logs: pytest.LogCaptureFixture) -> None:
    """A pool that cannot start containers warns once (not per retry) and says when it can."""
    engine = FakeEngine(name="fake://pool")
    async with container(engine, mode="pool", containers=1, prewarm=True) as ex:
        engine.fail("create", times=3)
        assert await ex.execute(1) == 1  # takes the warm one; its replacement fails 3 times
        await until(lambda: events(logs, "pool.refilled") != [], timeout=15)
    failed = events(logs, "pool.refill_failed")
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert failed[0].engine == "fake://pool"  # type: ignore[attr-defined]


async def test_a_pooled_container_that_died_is_replaced(logs: pytest.LogCaptureFixture) -> None:
    """An idle container found dead is an INFO ``pool.replaced`` record with its id."""
    engine = FakeEngine()
    async with container(engine, mode="pool", containers=1, prewarm=True) as ex:
        pool = ex._pool
        assert pool is not None
        (victim,) = pool.idle_ids()
        await engine.remove(victim)
        assert await ex.execute("ok") == "ok"
    (record,) = events(logs, "pool.replaced")
    assert record.container_id == victim  # type: ignore[attr-defined]
    assert record.name == "executor.pool" and record.levelno == logging.INFO


async def test_reap_reports_what_it_removed(logs: pytest.LogCaptureFixture) -> None:
    """reap() logs how many containers of dead owners it removed (INFO)."""
    engine = FakeEngine()
    dead = f"{socket.gethostname()}/999999999/1"
    await engine.create({"Image": "x", "Labels": {MANAGED_LABEL: "true", OWNER_LABEL: dead}})
    assert len(await reap(engine=engine)) == 1
    (record,) = events(logs, "reap")
    assert record.count == 1 and record.levelno == logging.INFO  # type: ignore[attr-defined]


async def test_sweeper_hand_over_and_removal(logs: pytest.LogCaptureFixture) -> None:
    """Closed during an outage: WARNING hand-over to the sweeper, INFO once it removed them."""
    engine = FakeEngine(name="fake://outage")
    ex = container(engine, mode="pool", containers=2, prewarm=True)
    async with ex:
        engine.go_down()
        with pytest.raises(EngineUnavailable):
            await ex.execute(1)
    (handed,) = events(logs, "sweeper.hand_over")
    assert handed.levelno == logging.WARNING and handed.engine == "fake://outage"  # type: ignore[attr-defined]
    engine.come_back()
    assert await anyio.to_thread.run_sync(sweeper.wait_idle, 10.0)
    (removed,) = events(logs, "sweeper.removed")
    assert removed.count >= 1 and engine.live() == []  # type: ignore[attr-defined]
