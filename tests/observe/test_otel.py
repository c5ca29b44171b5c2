"""OpenTelemetry: a span and metrics per call when an SDK is configured, nothing otherwise."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from opentelemetry.trace import StatusCode

from executor import (
    ContainerConfig,
    ContainerExecutor,
    ExecutionFailed,
    ExecutionTimeout,
    InputValidationError,
    LocalConfig,
    LocalExecutor,
)
from executor._observe import observer
from executor.testing import FakeEngine

if TYPE_CHECKING:
    from .conftest import Telemetry


def double(n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return 2 * n


async def slow(value: Any) -> Any:
    if value == "sleep":
        await anyio.sleep(30)
    return value


def container(engine: FakeEngine, **settings: Any) -> ContainerExecutor[Any, Any]:
    settings.setdefault("timeout", 10)
    return ContainerExecutor(ContainerConfig("fake/runner:latest", **settings), engine=engine)


async def test_without_a_configured_sdk_executors_are_untouched() -> None:
    """OpenTelemetry imported but no SDK set: no observer, calls run as they are, and
    nothing is ever put on the instance."""
    assert observer() is None
    local = LocalExecutor[int, int](double)
    async with container(FakeEngine()) as remote:
        for ex in (local, remote):
            assert "run" not in vars(ex) and "execute" not in vars(ex)
            assert ex.execute.__func__ is type(ex).execute  # type: ignore[attr-defined]
        assert await local.execute(2) == 4 and await remote.execute(3) == 3


def test_the_library_never_imports_opentelemetry() -> None:
    """An app that does not import OpenTelemetry never loads it through the library."""
    code = (
        "import sys, anyio\n"
        "from executor import ContainerConfig, ContainerExecutor, LocalExecutor\n"
        "from executor.testing import FakeEngine\n"
        "async def main():\n"
        "    async with LocalExecutor(abs, input_type=int, output_type=int) as ex:\n"
        "        await ex.execute(-1)\n"
        "    async with ContainerExecutor(ContainerConfig('i'), engine=FakeEngine()) as ex:\n"
        "        await ex.execute(1)\n"
        "anyio.run(main)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_an_executor_made_before_the_sdk_is_observed(request: pytest.FixtureRequest) -> None:
    """The hook looks the tracer up when a call starts: executors made before the SDK was
    configured (at import time, say) are traced, and a container one counts in the gauges."""
    local = LocalExecutor[int, int](double)
    async with container(FakeEngine(), mode="reuse", containers=1, prewarm=True) as remote:
        await local.execute(1)  # no SDK yet: not observed
        otel: Telemetry = request.getfixturevalue("otel")
        assert observer() is not None
        assert await local.execute(2) == 4
        assert (await local.run(3)).output == 6
        assert await remote.execute(4) == 4
        idle = [p.value for a, p in otel.points("executor.pool.idle") if a["executor.mode"]]
        assert sum(idle) == 1
    kinds = [dict(s.attributes or {})["executor.kind"] for s in otel.spans()]
    assert kinds == ["local", "local", "container"]
    assert "execute" not in vars(local) and "run" not in vars(remote)


class Doubling(LocalExecutor[int, int]):
    """A subclass whose execute adds to what the base class does."""

    async def execute(self, input: Any) -> int:
        return 10 * await super().execute(input)


class Wrapped(ContainerExecutor[Any, Any]):
    """A container executor subclass whose run changes the input."""

    async def run(self, input: Any) -> Any:
        return await super().run({"wrapped": input})


async def test_a_subclass_override_is_called_and_observed(otel: Telemetry) -> None:
    """A subclass's execute (or run) override runs, and the call inside it is one span."""
    assert await Doubling(double).execute(2) == 40
    config = ContainerConfig("fake/runner:latest", timeout=10)
    async with Wrapped(config, engine=FakeEngine()) as ex:
        assert await ex.execute(1) == {"wrapped": 1}
    kinds = [dict(s.attributes or {})["executor.kind"] for s in otel.spans()]
    assert kinds == ["local", "container"]


def test_a_provider_named_by_the_environment_is_observed() -> None:
    """OTEL_PYTHON_TRACER_PROVIDER (loaded by the API on first use) is found by the hook."""
    code = (
        "import opentelemetry.trace\n"
        "from executor._observe import observer\n"
        "print(type(observer().tracer).__module__)\n"
    )
    env = {**os.environ, "OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "opentelemetry.sdk.trace"


def test_an_api_module_imported_later_is_found() -> None:
    """With only the tracing API imported at first, a meter provider set after the metrics
    API is imported later is still found by the hook."""
    code = (
        "import opentelemetry.trace\n"
        "from executor._observe import observer\n"
        "assert observer() is None\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "metrics.set_meter_provider(MeterProvider())\n"
        "print(observer().meters is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


async def test_local_call_span_nests_under_the_caller(otel: Telemetry) -> None:
    """A local call's span is a child of the caller's span, with kind, outcome and phases."""
    ex = LocalExecutor[int, int](double, LocalConfig(timeout=5))
    with otel.tracer.start_as_current_span("request") as parent:
        assert await ex.execute(21) == 42
    (span,) = otel.spans()
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert dict(span.attributes or {}) == {"executor.kind": "local", "executor.outcome": "OK"}
    assert [e.name for e in span.events] == ["validate_in", "call", "validate_out"]
    stamps = [e.timestamp for e in span.events]
    assert span.start_time is not None and span.end_time is not None
    assert stamps == sorted(stamps) and span.start_time <= stamps[0] <= stamps[-1]


@pytest.mark.parametrize("mode", ["fresh", "pool", "reuse", "fork"])
async def test_container_call_span_in_every_mode(otel: Telemetry, mode: str) -> None:
    """A container call's span names image, engine, mode, container and outcome; a fresh one
    shows create/attach/start/call as events, a warm one only its own phases."""
    settings: dict[str, Any] = {
        "fresh": {},
        "pool": {"mode": "pool", "containers": 2, "prewarm": True},
        "reuse": {"mode": "reuse", "containers": 1, "prewarm": True},
        "fork": {"mode": "fork", "containers": 1, "prewarm": True},
    }[mode]
    engine = FakeEngine(name="fake://one")
    async with container(engine, **settings) as ex:
        await ex.execute({"n": 1})
        await ex.execute({"n": 2})
    spans = otel.spans()
    assert len(spans) == 2
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes == {
            "executor.kind": "container",
            "executor.mode": mode,
            "executor.image": "fake/runner:latest",
            "executor.engine": "fake://one",
            "executor.outcome": "OK",
            "executor.container_id": attributes["executor.container_id"],
        }
        events = {e.name: e.attributes["executor.duration"] for e in span.events}  # type: ignore[index]
        assert all(seconds >= 0 for seconds in events.values())
        assert {"call", "validate_out"} <= set(events)
        assert ({"create", "attach", "start"} <= set(events)) is (mode == "fresh")


async def test_failures_set_the_outcome_code_and_error_status(otel: Telemetry) -> None:
    """A failed call's span carries the error code as outcome, an error status and the
    exception; a cancelled one is CANCELLED, not an error."""
    local = LocalExecutor[int, int](double)
    with pytest.raises(ExecutionFailed):
        await local.execute(-1)
    with pytest.raises(InputValidationError):
        await local.execute("x")
    async with container(FakeEngine(slow), timeout=0.2) as remote:
        with pytest.raises(ExecutionTimeout):
            await remote.execute("sleep")
        with anyio.move_on_after(0.05):
            await remote.execute("sleep")
    outcomes = [dict(s.attributes or {})["executor.outcome"] for s in otel.spans()]
    assert outcomes == ["EXECUTION_FAILED", "INPUT_INVALID", "TIMEOUT", "CANCELLED"]
    failed, invalid, timed_out, cancelled = otel.spans()
    for span in (failed, invalid, timed_out):
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]
    assert dict(timed_out.attributes or {})["executor.engine"] == "fake://engine"
    assert cancelled.status.status_code is StatusCode.UNSET


async def test_metrics_count_calls_and_failures_by_code(otel: Telemetry) -> None:
    """executor.calls counts by outcome, executor.failures by code, and every call has a
    duration in executor.call.duration."""
    ex = LocalExecutor[int, int](double)
    for n in (1, 2, 3, -1):
        with pytest.raises(ExecutionFailed) if n < 0 else contextlib.nullcontext():
            await ex.execute(n)
    calls = {a["executor.outcome"]: p.value for a, p in otel.points("executor.calls")}
    assert calls == {"OK": 3, "EXECUTION_FAILED": 1}
    failures = {a["executor.code"]: p.value for a, p in otel.points("executor.failures")}
    assert failures == {"EXECUTION_FAILED": 1}
    durations = {a["executor.outcome"]: p for a, p in otel.points("executor.call.duration")}
    assert durations["OK"].count == 3 and durations["OK"].sum > 0
    assert durations["EXECUTION_FAILED"].count == 1


async def test_pool_gauges_show_idle_and_in_use_containers(otel: Telemetry) -> None:
    """executor.pool.idle and executor.pool.in_use follow the pool: warm, busy, closed."""
    engine = FakeEngine(slow)

    def gauges() -> tuple[int, int]:
        idle = [p.value for a, p in otel.points("executor.pool.idle") if a["executor.mode"]]
        busy = [p.value for a, p in otel.points("executor.pool.in_use") if a["executor.mode"]]
        return sum(idle), sum(busy)

    async with container(engine, mode="reuse", containers=2, prewarm=True, timeout=1) as ex:
        assert gauges() == (2, 0)
        attributes = otel.points("executor.pool.idle")[0][0]
        assert attributes == {
            "executor.image": "fake/runner:latest",
            "executor.engine": "fake://engine",
            "executor.mode": "reuse",
        }
        async with anyio.create_task_group() as tg:
            tg.start_soon(_swallow_timeout, ex)
            with anyio.fail_after(5):
                while gauges() != (1, 1):
                    await anyio.sleep(0.01)
    assert gauges() == (0, 0)


async def test_execute_many_calls_nest_under_the_caller(otel: Telemetry) -> None:
    """Calls started by execute_many in worker tasks still belong to the caller's trace."""
    ex = LocalExecutor[int, int](double)
    with otel.tracer.start_as_current_span("batch") as parent:
        await ex.execute_many(range(10), concurrency=3)
    spans = otel.spans()
    assert len(spans) == 10
    assert {s.parent.span_id for s in spans if s.parent} == {parent.get_span_context().span_id}


async def _swallow_timeout(ex: ContainerExecutor[Any, Any]) -> None:
    with pytest.raises(ExecutionTimeout):
        await ex.execute("sleep")


async def test_a_streamed_call_is_a_span_too(otel: Telemetry) -> None:
    """stream() on an observed container executor makes the same executor.run span, a child of
    the caller's span, with its outcome."""
    async with container(FakeEngine()) as ex:
        with otel.tracer.start_as_current_span("request") as request:
            async with ex.stream(5) as events:
                assert [e.output async for e in events] == [5]  # type: ignore[union-attr]
    (span,) = otel.spans()
    assert span.attributes is not None and span.attributes["executor.outcome"] == "OK"
    assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
