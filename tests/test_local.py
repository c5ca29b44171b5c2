"""LocalExecutor: types, schemas, validation, timeouts, failures, batches and cancellation.

Cancellation tests never sleep and hope: the task blocks on an event that never fires, the
caller cancels with ``anyio.move_on_after(0.05)``, and the test asserts the state afterwards.
"""

from __future__ import annotations

import contextvars
import dataclasses
import gc
import json
import pickle
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import anyio.lowlevel
import msgspec
import pytest

from executor import (
    ConfigError,
    ContainerFailed,
    EngineUnavailable,
    Execution,
    ExecutionFailed,
    ExecutionTimeout,
    Executor,
    ExecutorClosed,
    ExecutorError,
    ImageNotFound,
    InputValidationError,
    LocalConfig,
    LocalExecutor,
    OutputTooLarge,
    OutputValidationError,
    ProtocolError,
    SchemaError,
    ValidationError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

Cancelled = anyio.get_cancelled_exc_class

# Every coroutine test runs on both anyio backends (see tests/conftest.py); sync tests once.
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The backend a test runs on: both, always (trio is in the dev extra, never skipped)."""
    return request.param  # type: ignore[no-any-return]


# -- the seed's stats task, in three type systems ------------------------------------------


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


@dataclasses.dataclass
class DataInput:
    values: list[float]


@dataclasses.dataclass
class DataOutput:
    count: int
    sum: float
    mean: float


class DictInput(TypedDict):
    values: list[float]


class DictOutput(TypedDict):
    count: int
    sum: float
    mean: float


async def stats(inp: Input) -> Output:
    total = sum(inp.values)
    return Output(count=len(inp.values), sum=total, mean=total / len(inp.values))


async def data_stats(inp: DataInput) -> DataOutput:
    total = sum(inp.values)
    return DataOutput(count=len(inp.values), sum=total, mean=total / len(inp.values))


async def dict_stats(inp: DictInput) -> DictOutput:
    total = sum(inp["values"])
    return {"count": len(inp["values"]), "sum": total, "mean": total / len(inp["values"])}


async def untyped_stats(inp):  # type: ignore[no-untyped-def]
    total = sum(inp.values)
    return {"count": len(inp.values), "sum": total, "mean": total / len(inp.values)}


MIN_TWO_VALUES = {
    "type": "object",
    "properties": {"values": {"type": "array", "minItems": 2, "items": {"type": "number"}}},
    "required": ["values"],
}


# -- typed round trips -------------------------------------------------------------------


async def test_struct_round_trip() -> None:
    """A Struct input gives the Struct output the function returned."""
    ex = LocalExecutor[Input, Output](stats)
    assert await ex.execute(Input(values=[1.0, 2.0, 3.0])) == Output(count=3, sum=6.0, mean=2.0)


async def test_dataclass_round_trip() -> None:
    """Dataclass input and output types work like Structs, from an instance or a dict."""
    ex = LocalExecutor[DataInput, DataOutput](data_stats)
    expected = DataOutput(count=2, sum=4.0, mean=2.0)
    assert await ex.execute(DataInput(values=[1.0, 3.0])) == expected
    assert await ex.execute({"values": [1.0, 3.0]}) == expected


async def test_typeddict_round_trip() -> None:
    """TypedDict input and output types are validated plain dicts."""
    ex = LocalExecutor[DictInput, DictOutput](dict_stats)
    assert await ex.execute({"values": [1.0, 3.0]}) == {"count": 2, "sum": 4.0, "mean": 2.0}
    with pytest.raises(InputValidationError) as info:
        await ex.execute({"values": "nope"})
    assert info.value.path == "$.values"


async def test_dict_input_is_converted_to_the_struct() -> None:
    """Plain JSON-like input is converted to the input Struct before the function sees it."""
    seen: list[object] = []

    async def fn(inp: Input) -> Output:
        seen.append(inp)
        return await stats(inp)

    ex = LocalExecutor[Input, Output](fn)
    assert await ex.execute({"values": [2, 4]}) == Output(count=2, sum=6.0, mean=3.0)
    assert seen == [Input(values=[2.0, 4.0])]
    assert type(seen[0]) is Input


async def test_dict_output_is_converted_to_the_output_type() -> None:
    """A function returning a plain dict gets its result converted to the output Struct."""
    ex = LocalExecutor[Input, Output](untyped_stats)
    result = await ex.execute({"values": [1.0, 2.0]})
    assert type(result) is Output
    assert result == Output(count=2, sum=3.0, mean=1.5)


async def test_no_types_pass_values_through() -> None:
    """Without any type information values are passed through unconverted and unchecked."""
    ex = LocalExecutor(lambda x: x)
    assert ex.input_type is Any and ex.output_type is Any
    assert ex.schema_in is None and ex.schema_out is None
    value = {"anything": [1, "two", None]}
    assert await ex.execute(value) is value


# -- validation ----------------------------------------------------------------------------


async def test_invalid_input_raises_with_path_and_does_not_call() -> None:
    """Input that does not match its type raises InputValidationError at its path; fn never runs."""
    calls: list[object] = []

    async def fn(inp: Input) -> Output:
        calls.append(inp)
        return await stats(inp)

    ex = LocalExecutor[Input, Output](fn)
    with pytest.raises(InputValidationError) as info:
        await ex.execute({"values": ["one", 2.0]})
    err = info.value
    assert err.path == "$.values[0]"
    assert err.code == "INPUT_INVALID"
    assert "$.values[0]" in err.message
    assert isinstance(err, ValidationError)
    assert calls == []


async def test_invalid_struct_instance_input_is_rejected() -> None:
    """A Struct instance built with wrong field types is caught (Structs do not self-validate)."""
    ex = LocalExecutor[Input, Output](stats)
    with pytest.raises(InputValidationError) as info:
        await ex.execute(Input(values=["x"]))  # type: ignore[list-item]
    assert info.value.path == "$.values[0]"


async def test_invalid_output_raises_with_path() -> None:
    """A returned value that does not match the output type raises OutputValidationError."""

    async def wrong(inp: Input) -> Output:
        return Output(count="three", sum=1.0, mean=1.0)  # type: ignore[arg-type]

    ex = LocalExecutor[Input, Output](wrong)
    with pytest.raises(OutputValidationError) as info:
        await ex.execute({"values": [1.0]})
    err = info.value
    assert err.path == "$.count"
    assert err.code == "OUTPUT_INVALID"
    assert isinstance(err, ValidationError)


async def test_invalid_dict_output_raises_with_path() -> None:
    """A returned dict with a wrong nested value is located by its path."""

    async def wrong(inp: Input) -> Any:
        return {"count": 1, "sum": [], "mean": 1.0}

    ex = LocalExecutor[Input, Output](wrong)
    with pytest.raises(OutputValidationError) as info:
        await ex.execute({"values": [1.0]})
    assert info.value.path == "$.sum"


# -- schemas -------------------------------------------------------------------------------


def test_schema_is_derived_from_the_types() -> None:
    """Without explicit schemas, schema_in/schema_out are msgspec's schemas of the types."""
    ex = LocalExecutor[Input, Output](stats)
    assert ex.schema_in == msgspec.json.schema(Input)
    assert ex.schema_out == msgspec.json.schema(Output)


async def test_explicit_schema_wins_over_the_derived_one() -> None:
    """An explicit schema replaces the derived one and rejects what the type alone allows."""
    ex = LocalExecutor[Input, Output](stats, LocalConfig(schema_in=MIN_TWO_VALUES))
    assert ex.schema_in == MIN_TWO_VALUES
    assert ex.schema_out == msgspec.json.schema(Output)
    with pytest.raises(InputValidationError) as info:
        await ex.execute({"values": [1.0]})
    assert info.value.path == "$.values"
    with pytest.raises(InputValidationError) as info:
        await ex.execute(Input(values=[1.0]))
    assert info.value.path == "$.values"
    assert await ex.execute({"values": [1.0, 3.0]}) == Output(count=2, sum=4.0, mean=2.0)


async def test_explicit_output_schema_is_enforced() -> None:
    """An explicit output schema checks the function's result."""
    schema_out = {"type": "object", "properties": {"count": {"maximum": 1}}}
    ex = LocalExecutor[Input, Output](stats, LocalConfig(schema_out=schema_out))
    with pytest.raises(OutputValidationError) as info:
        await ex.execute({"values": [1.0, 2.0]})
    assert info.value.path == "$.count"


@pytest.mark.parametrize("form", ["dict", "str", "bytes", "path", "str-path"])
async def test_schema_sources(form: str, tmp_path: Path) -> None:
    """A schema may be given as a dict, JSON text, JSON bytes, a Path or a path string."""
    text = json.dumps(MIN_TWO_VALUES)
    file = tmp_path / "schema.json"
    file.write_text(text)
    source: Any = {
        "dict": MIN_TWO_VALUES,
        "str": text,
        "bytes": text.encode(),
        "path": file,
        "str-path": str(file),
    }[form]
    ex = LocalExecutor[Input, Output](stats, LocalConfig(schema_in=source))
    assert ex.schema_in == MIN_TWO_VALUES
    with pytest.raises(InputValidationError):
        await ex.execute({"values": [1.0]})


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("{not json", "not valid JSON"),
        (b'{"type": ', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        ("[1, 2]", "must be a JSON object"),
        (b"42", "must be a JSON object"),
        ({"type": "nonsense"}, "not a valid JSON Schema"),
        ('{"type": "object", "properties": {"a": {"minimum": "x"}}}', "JSON Schema"),
        ("/nonexistent/schema.json", "cannot read schema file"),
    ],
)
@pytest.mark.parametrize("side", ["schema_in", "schema_out"])
def test_bad_schema_fails_at_construction(side: str, source: Any, match: str) -> None:
    """An unreadable, non-object or invalid schema raises SchemaError when the executor is built."""
    with pytest.raises(SchemaError, match=match) as info:
        LocalExecutor[Input, Output](stats, LocalConfig(**{side: source}))
    assert info.value.code == "SCHEMA_INVALID"
    assert side in info.value.message


async def test_schema_path_that_looks_like_a_boolean(tmp_path: Path) -> None:
    """A schema file whose name starts with "true" or "false" is read as a path, not as JSON."""
    file = tmp_path / "true_schema.json"
    file.write_text(json.dumps(MIN_TWO_VALUES))
    ex = LocalExecutor[Input, Output](stats, LocalConfig(schema_in=str(file)))
    assert ex.schema_in == MIN_TWO_VALUES


async def test_boolean_schemas() -> None:
    """The JSON Schema booleans work: "true" accepts anything, "false" rejects everything."""
    anything = LocalExecutor(lambda x: x, LocalConfig(schema_in="true"))
    assert await anything.execute([1, "x"]) == [1, "x"]
    nothing = LocalExecutor[Input, Output](stats, LocalConfig(schema_in=" false "))
    with pytest.raises(InputValidationError):
        await nothing.execute({"values": [1.0]})


def test_missing_schema_file_names_the_file() -> None:
    """SchemaError for a missing file carries the path in ``.source``."""
    with pytest.raises(SchemaError) as info:
        LocalExecutor(stats, LocalConfig(schema_in="/nonexistent/schema.json"))
    assert info.value.source == "/nonexistent/schema.json"
    assert info.value.to_dict()["source"] == "/nonexistent/schema.json"


def test_bad_schema_fails_even_without_validation() -> None:
    """validate=False does not postpone a bad schema's error to the first call."""
    with pytest.raises(SchemaError):
        LocalExecutor(stats, LocalConfig(schema_in={"type": "nonsense"}, validate=False))


async def test_validate_false_skips_schema_checks() -> None:
    """With validate=False an explicit schema is not checked, but dicts are still converted."""
    seen: list[object] = []

    async def fn(inp: Input) -> Output:
        seen.append(inp)
        return await stats(inp)

    config = LocalConfig(schema_in=MIN_TWO_VALUES, validate=False)
    ex = LocalExecutor[Input, Output](fn, config)
    assert await ex.execute({"values": [1.0]}) == Output(count=1, sum=1.0, mean=1.0)
    assert seen == [Input(values=[1.0])]


# -- where the types come from -------------------------------------------------------------


class OtherInput(msgspec.Struct):
    other: int


class OtherOutput(msgspec.Struct):
    result: int


async def test_types_from_subscription() -> None:
    """``LocalExecutor[In, Out](fn)`` types an unannotated function."""
    ex = LocalExecutor[Input, Output](untyped_stats)
    assert (ex.input_type, ex.output_type) == (Input, Output)
    assert await ex.execute({"values": [4.0]}) == Output(count=1, sum=4.0, mean=4.0)


async def test_types_from_arguments() -> None:
    """``input_type=``/``output_type=`` type an unannotated function."""
    ex = LocalExecutor(untyped_stats, input_type=Input, output_type=Output)
    assert (ex.input_type, ex.output_type) == (Input, Output)
    assert await ex.execute({"values": [4.0]}) == Output(count=1, sum=4.0, mean=4.0)


async def test_types_from_annotations() -> None:
    """Without a subscription or arguments, types come from the function's annotations."""
    ex = LocalExecutor(stats)
    assert (ex.input_type, ex.output_type) == (Input, Output)
    assert ex.schema_in == msgspec.json.schema(Input)
    assert await ex.execute({"values": [4.0]}) == Output(count=1, sum=4.0, mean=4.0)


def test_subscription_beats_arguments() -> None:
    """The subscription takes precedence over ``input_type=``/``output_type=``."""
    ex = LocalExecutor[Input, Output](untyped_stats, input_type=OtherInput, output_type=OtherOutput)
    assert (ex.input_type, ex.output_type) == (Input, Output)


def test_arguments_beat_annotations() -> None:
    """Explicit arguments take precedence over annotations; a missing one falls back to them."""
    ex = LocalExecutor(stats, input_type=OtherInput)
    assert (ex.input_type, ex.output_type) == (OtherInput, Output)
    assert ex.schema_in == msgspec.json.schema(OtherInput)


async def test_subclass_picks_up_types() -> None:
    """``class MyEx(LocalExecutor[In, Out])`` gives every instance those types."""

    class StatsExecutor(LocalExecutor[Input, Output]):
        pass

    ex = StatsExecutor(untyped_stats)
    assert (ex.input_type, ex.output_type) == (Input, Output)
    assert isinstance(ex, LocalExecutor)
    assert await ex.execute({"values": [1.0, 2.0]}) == Output(count=2, sum=3.0, mean=1.5)


def test_unsupported_type_is_a_config_error() -> None:
    """A type msgspec cannot describe is rejected at construction with ConfigError."""
    with pytest.raises(ConfigError, match="not supported"):
        LocalExecutor(untyped_stats, input_type=complex)


# -- sync and async functions ---------------------------------------------------------------


async def test_async_function_runs_in_the_callers_thread() -> None:
    """An async function is awaited on the event loop's thread."""
    idents: list[int] = []

    async def fn(x: int) -> int:
        idents.append(threading.get_ident())
        return x + 1

    assert await LocalExecutor(fn).execute(1) == 2
    assert idents == [threading.get_ident()]


async def test_sync_function_runs_in_a_worker_thread() -> None:
    """A plain function runs in a worker thread so it cannot block the event loop."""
    idents: list[int] = []

    def fn(x: int) -> int:
        idents.append(threading.get_ident())
        return x + 1

    assert await LocalExecutor(fn).execute(1) == 2
    assert len(idents) == 1
    assert idents[0] != threading.get_ident()


async def test_async_callable_object_is_awaited() -> None:
    """An object with an ``async def __call__`` is treated as an async function."""

    class Adder:
        async def __call__(self, x: int) -> int:
            return x + 10

    assert await LocalExecutor(Adder(), input_type=int, output_type=int).execute(1) == 11


# -- timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["execute", "run"])
async def test_timeout_on_async_function(method: str) -> None:
    """An async function that sleeps past the timeout raises ExecutionTimeout on time."""

    async def slow(x: int) -> int:
        await anyio.sleep(3600)
        return x

    ex = LocalExecutor(slow, LocalConfig(timeout=0.05))
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        await getattr(ex, method)(1)
    elapsed = time.monotonic() - started
    err = info.value
    assert err.timeout == 0.05
    assert err.code == "TIMEOUT"
    assert isinstance(err, TimeoutError)
    assert 0.04 <= elapsed < 2.0


async def test_coroutine_that_never_suspends_finishes_despite_tiny_timeout() -> None:
    """A coroutine that never awaits cannot be cancelled, so it completes even if it overruns."""

    async def busy(x: int) -> int:
        deadline = time.perf_counter() + 0.01
        while time.perf_counter() < deadline:
            pass
        return x

    assert await LocalExecutor(busy, LocalConfig(timeout=1e-6)).execute(7) == 7


async def test_coroutine_that_suspends_repeatedly_is_cancelled_on_time() -> None:
    """A coroutine that keeps yielding to the loop (never blocking long) still times out."""
    checkpoints = 0

    async def spinner(x: int) -> int:
        nonlocal checkpoints
        while True:
            checkpoints += 1
            await anyio.lowlevel.checkpoint()

    started = time.monotonic()
    with pytest.raises(ExecutionTimeout):
        await LocalExecutor(spinner, LocalConfig(timeout=0.05)).execute(1)
    assert time.monotonic() - started < 2.0
    assert checkpoints > 1


async def test_deadline_counts_from_the_start_of_the_call() -> None:
    """Work done before the first suspension counts: an overrun is cancelled as it suspends."""
    gaps: list[float] = []

    async def late_sleeper(x: int) -> int:
        time.sleep(0.3)  # blocks the loop without suspending: the deadline passes in here
        suspended = time.monotonic()
        try:
            await anyio.Event().wait()
        except Cancelled():
            gaps.append(time.monotonic() - suspended)
            raise
        return x

    with pytest.raises(ExecutionTimeout):
        await LocalExecutor(late_sleeper, LocalConfig(timeout=0.25)).execute(1)
    # Cancelled at once, not a further ``timeout`` after the first suspension.
    assert len(gaps) == 1
    assert gaps[0] < 0.125


async def test_fast_async_function_with_timeout_returns() -> None:
    """A suspending coroutine that finishes within its timeout returns normally."""

    async def quick(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x * 2

    ex = LocalExecutor(quick, LocalConfig(timeout=5.0))
    assert await ex.execute(21) == 42
    assert (await ex.run(21)).output == 42


async def test_coroutine_that_awaits_without_suspending_returns() -> None:
    """A coroutine whose awaits all complete at once returns its value under a timeout."""

    async def inner(x: int) -> int:
        return x + 1

    async def layered(x: int) -> int:
        return await inner(x)

    ex = LocalExecutor(layered, LocalConfig(timeout=5.0))
    assert await ex.execute(1) == 2
    assert (await ex.run(2)).output == 3


def _holds_a_scope(kind: str, gate: anyio.Event) -> Any:
    """A task that opens a cancel scope of its own before it first suspends."""

    async def with_fail_after(x: int) -> int:
        with anyio.fail_after(3600):
            await gate.wait()
        return x

    async def with_task_group(x: int) -> int:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate.wait)
        return x

    async def with_thread(x: int) -> int:
        # run_sync holds a cancel scope while it waits; abandoned on cancel, so it can time out.
        delay = 0.0 if gate.is_set() else 0.3
        await anyio.to_thread.run_sync(time.sleep, delay, abandon_on_cancel=True)
        return x

    return {"fail_after": with_fail_after, "task_group": with_task_group, "thread": with_thread}[
        kind
    ]


@pytest.mark.parametrize("kind", ["fail_after", "task_group", "thread"])
async def test_timeout_while_the_task_holds_its_own_cancel_scope(kind: str) -> None:
    """A task inside a cancel scope it opened before suspending still times out as TIMEOUT.

    This is the case that trio hits on every ``sleep`` (trio opens a scope before it blocks):
    the deadline's scope must enclose the task's scopes, not be entered inside them.
    """
    ex = LocalExecutor(_holds_a_scope(kind, anyio.Event()), LocalConfig(timeout=0.05))
    with pytest.raises(ExecutionTimeout) as info:
        await ex.execute(1)
    assert info.value.code == "TIMEOUT"
    # The caller's task is left clean: no stray cancellation, and the next call works.
    await anyio.lowlevel.checkpoint()
    done = anyio.Event()
    done.set()
    assert await LocalExecutor(_holds_a_scope(kind, done), LocalConfig(timeout=5.0)).execute(7) == 7


@pytest.mark.parametrize("kind", ["fail_after", "task_group", "thread"])
async def test_task_holding_its_own_cancel_scope_returns_within_its_timeout(kind: str) -> None:
    """A task whose own cancel scope closes while the deadline is armed returns its value."""
    gate = anyio.Event()
    ex = LocalExecutor(_holds_a_scope(kind, gate), LocalConfig(timeout=30.0))
    async with anyio.create_task_group() as tg:
        tg.start_soon(_set_soon, gate)
        assert await ex.execute(5) == 5


async def _set_soon(event: anyio.Event) -> None:
    await anyio.sleep(0.01)
    event.set()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_sleep_past_the_timeout_is_a_timeout() -> None:
    """On trio, a task in ``trio.sleep`` (the reported bug) raises ExecutionTimeout on time."""
    import trio

    async def slow(x: int) -> int:
        await trio.sleep(3600)
        return x

    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        await LocalExecutor(slow, LocalConfig(timeout=0.05)).execute(1)
    assert info.value.code == "TIMEOUT"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("method", ["execute", "run"])
async def test_timeout_on_sync_function_abandons_its_thread(method: str) -> None:
    """A sync function over its timeout raises on time; its thread is abandoned, not killed."""
    release = threading.Event()
    finished = threading.Event()

    def slow(x: int) -> int:
        release.wait(10)
        finished.set()
        return x

    ex = LocalExecutor(slow, LocalConfig(timeout=0.05))
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        await getattr(ex, method)(1)
    assert time.monotonic() - started < 2.0
    assert info.value.timeout == 0.05
    # Documented behaviour: Python cannot kill a thread, so it is still running here.
    assert not finished.is_set()
    release.set()
    assert await anyio.to_thread.run_sync(finished.wait, 5)


# -- task failures -------------------------------------------------------------------------


class Boom(Exception):
    pass


async def async_boom(x: int) -> int:
    raise Boom(f"bad input {x}")


def sync_boom(x: int) -> int:
    raise Boom(f"bad input {x}")


@pytest.mark.parametrize("fn", [async_boom, sync_boom], ids=["async", "sync"])
@pytest.mark.parametrize("method", ["execute", "run"])
async def test_task_exception_becomes_execution_failed(fn: Any, method: str) -> None:
    """An exception in the task is raised as ExecutionFailed with traceback and cause."""
    with pytest.raises(ExecutionFailed) as info:
        await getattr(LocalExecutor(fn), method)(3)
    err = info.value
    assert err.code == "EXECUTION_FAILED"
    assert isinstance(err.__cause__, Boom)
    assert str(err.__cause__) == "bad input 3"
    assert "Boom" in err.message and "bad input 3" in err.message
    assert err.details is not None
    assert "Traceback" in err.details and fn.__name__ in err.details
    assert err.to_dict()["details"] == err.details


@pytest.mark.parametrize(
    "inner",
    [
        InputValidationError("nested call failed", path="$.x"),
        ExecutionTimeout(1.0),
        TimeoutError("a timeout of the task's own"),
    ],
    ids=["validation", "execution-timeout", "builtin-timeout"],
)
async def test_errors_raised_by_the_task_are_its_failure(inner: Exception) -> None:
    """Even an ExecutorError (or TimeoutError) raised inside the task is wrapped as its failure."""

    async def fn(x: int) -> int:
        raise inner

    with pytest.raises(ExecutionFailed) as info:
        await LocalExecutor(fn, LocalConfig(timeout=10.0)).execute(1)
    assert info.value.__cause__ is inner


# -- run() ---------------------------------------------------------------------------------


async def test_run_returns_an_execution() -> None:
    """run() gives the output with empty logs, a positive duration and per-phase timings."""
    ex = LocalExecutor[Input, Output](stats)
    execution = await ex.run({"values": [1.0, 2.0, 3.0]})
    assert isinstance(execution, Execution)
    assert execution.output == Output(count=3, sum=6.0, mean=2.0)
    assert execution.logs == ""
    assert not execution.logs_truncated
    assert execution.duration > 0
    assert set(execution.timings) == {"validate_in", "call", "validate_out"}
    assert all(t >= 0 for t in execution.timings.values())
    assert sum(execution.timings.values()) == pytest.approx(execution.duration)
    assert execution.container_id is None and execution.exit_code is None


async def test_run_validates_like_execute() -> None:
    """run() raises the same validation errors as execute()."""
    ex = LocalExecutor[Input, Output](stats)
    with pytest.raises(InputValidationError):
        await ex.run({"values": "x"})


async def test_executor_is_an_async_context_manager() -> None:
    """``async with`` returns the executor itself and aclose() may be called again."""
    async with LocalExecutor[Input, Output](stats) as ex:
        assert isinstance(ex, LocalExecutor)
        assert await ex.execute({"values": [1.0]}) == Output(count=1, sum=1.0, mean=1.0)
    await ex.aclose()


# -- execute_many --------------------------------------------------------------------------


async def test_execute_many_keeps_input_order() -> None:
    """Results come back in input order even when calls finish in reverse order."""
    n = 6
    turn = [anyio.Event() for _ in range(n)]
    finished: list[int] = []

    async def fn(x: int) -> int:
        if x < n - 1:
            await turn[x].wait()
        finished.append(x)
        if x > 0:
            turn[x - 1].set()
        return x * 10

    with anyio.fail_after(5):  # a regression shows as a failure, not a hang
        results = await LocalExecutor(fn).execute_many(range(n), concurrency=n)
    assert finished == list(reversed(range(n)))
    assert results == [x * 10 for x in range(n)]


async def test_execute_many_respects_the_concurrency_bound() -> None:
    """No more than ``concurrency`` calls are ever in flight at once."""
    concurrency = 3
    in_flight = max_in_flight = started = 0
    full = anyio.Event()
    release = anyio.Event()

    async def fn(x: int) -> int:
        nonlocal in_flight, max_in_flight, started
        started += 1
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        if in_flight == concurrency:
            full.set()
        try:
            await release.wait()
        finally:
            in_flight -= 1
        return x

    results: list[Any] = []

    async def batch() -> None:
        results.extend(await LocalExecutor(fn).execute_many(range(20), concurrency=concurrency))

    async with anyio.create_task_group() as tg:
        tg.start_soon(batch)
        with anyio.fail_after(5):
            await full.wait()
        await anyio.wait_all_tasks_blocked()
        assert started == concurrency
        release.set()
    assert results == list(range(20))
    assert max_in_flight == concurrency


async def test_execute_many_return_exceptions_places_errors_in_order() -> None:
    """With return_exceptions=True each failure takes its input's place in the results."""

    async def fn(x: int) -> int:
        if x % 3 == 1:
            raise Boom(str(x))
        return x

    results = await LocalExecutor(fn).execute_many(
        [0, 1, 2, "three", 4], concurrency=2, return_exceptions=True
    )
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], ExecutionFailed) and str(results[1].__cause__) == "1"
    assert isinstance(results[3], InputValidationError)
    assert isinstance(results[4], ExecutionFailed) and str(results[4].__cause__) == "4"


async def test_execute_many_first_failure_cancels_the_rest() -> None:
    """With return_exceptions=False the first failure is raised and the other calls cancelled."""
    concurrency = 4
    started: list[int] = []
    cancelled: list[int] = []
    blocked = 0
    all_blocked = anyio.Event()

    async def fn(x: int) -> int:
        nonlocal blocked
        started.append(x)
        if x == concurrency - 1:
            await all_blocked.wait()
            raise Boom("the failing call")
        blocked += 1
        if blocked == concurrency - 1:
            all_blocked.set()
        try:
            await anyio.Event().wait()
        except Cancelled():
            cancelled.append(x)
            raise
        return x

    with pytest.raises(ExecutionFailed) as info, anyio.fail_after(5):
        await LocalExecutor(fn).execute_many(range(100), concurrency=concurrency)
    assert str(info.value.__cause__) == "the failing call"
    assert sorted(started) == [0, 1, 2, 3]
    assert sorted(cancelled) == [0, 1, 2]


async def test_execute_many_consumes_a_generator_lazily() -> None:
    """Inputs are pulled only as slots free up, not read ahead into memory."""
    concurrency = 3
    produced = 0
    in_flight = 0
    full = anyio.Event()
    release = anyio.Event()

    def inputs() -> Iterator[int]:
        nonlocal produced
        for i in range(1000):
            produced += 1
            yield i

    async def fn(x: int) -> int:
        nonlocal in_flight
        in_flight += 1
        if in_flight == concurrency:
            full.set()
        await release.wait()
        return x

    results: list[Any] = []

    async def batch() -> None:
        results.extend(await LocalExecutor(fn).execute_many(inputs(), concurrency=concurrency))

    async with anyio.create_task_group() as tg:
        tg.start_soon(batch)
        with anyio.fail_after(5):
            await full.wait()
        await anyio.wait_all_tasks_blocked()
        assert produced <= concurrency + 1
        release.set()
    assert produced == 1000
    assert results == list(range(1000))


async def test_execute_many_accepts_an_async_iterable_and_empty_input() -> None:
    """execute_many takes async iterables too, and an empty batch gives an empty list."""

    async def inputs() -> AsyncIterator[int]:
        for i in range(5):
            yield i

    async def double(x: int) -> int:
        return 2 * x

    ex = LocalExecutor(double)
    assert await ex.execute_many(inputs(), concurrency=2) == [0, 2, 4, 6, 8]
    assert await ex.execute_many([], concurrency=2) == []


async def test_execute_many_reports_progress() -> None:
    """on_progress is called after each call with the finished and failed counts so far."""
    calls: list[tuple[int, int]] = []

    async def fn(x: int) -> int:
        if x == 1:
            raise Boom("x")
        return x

    await LocalExecutor(fn).execute_many(
        range(3),
        concurrency=1,
        return_exceptions=True,
        on_progress=lambda d, f: calls.append((d, f)),
    )
    assert calls == [(1, 0), (2, 1), (3, 1)]


async def test_execute_many_reraises_a_bug_in_the_inputs() -> None:
    """A bug in the inputs iterator is raised as itself, not wrapped in an ExceptionGroup."""
    with pytest.raises(RuntimeError, match="inputs bug"):
        await LocalExecutor(identity).execute_many(buggy_inputs(), concurrency=2)


# -- map -----------------------------------------------------------------------------------


async def test_map_streams_results_before_all_finish() -> None:
    """The first result arrives while the other calls are still blocked."""
    gate = anyio.Event()
    blocked = 0

    async def fn(x: int) -> int:
        nonlocal blocked
        if x != 0:
            blocked += 1
            await gate.wait()
        return x

    results: list[tuple[int, Any]] = []
    with anyio.fail_after(5):  # if map waited for every call, this would never return
        async for index, value in LocalExecutor(fn).map(range(5), concurrency=5):
            if not results:
                assert (index, value) == (0, 0)
                assert not gate.is_set()  # the other four cannot have finished
                gate.set()
            results.append((index, value))
    assert sorted(results) == [(i, i) for i in range(5)]
    assert blocked == 4


async def test_map_yields_errors_in_place() -> None:
    """map yields an ExecutorError for a failed call instead of stopping the stream."""

    async def fn(x: int) -> int:
        if x == 2:
            raise Boom("two")
        return x

    results = dict([item async for item in LocalExecutor(fn).map(range(4), concurrency=2)])
    assert [results[i] for i in (0, 1, 3)] == [0, 1, 3]
    assert isinstance(results[2], ExecutionFailed)


async def test_map_over_100k_async_inputs_keeps_memory_bounded() -> None:
    """map streams 100 000 async-generated inputs without reading far ahead of its consumer."""
    n = 100_000
    concurrency = 8
    produced = consumed = max_ahead = 0

    async def inputs() -> AsyncIterator[int]:
        nonlocal produced, max_ahead
        for i in range(n):
            produced += 1
            max_ahead = max(max_ahead, produced - consumed)
            yield i

    async def double(x: int) -> int:
        return 2 * x

    total = 0
    async for _, value in LocalExecutor(double).map(inputs(), concurrency=concurrency):
        consumed += 1
        total += value
        if consumed in (1, n // 2):
            # A stalled consumer: let the producer side run as far as it can.
            await anyio.wait_all_tasks_blocked()
    assert consumed == produced == n
    assert total == n * (n - 1)
    assert max_ahead <= 2 * concurrency + 3


async def test_map_break_in_async_with_cancels_in_flight_calls() -> None:
    """Leaving ``async with ex.map(...)`` early cancels the calls still running."""
    cancelled: list[int] = []
    blocked = 0
    all_blocked = anyio.Event()

    async def fn(x: int) -> int:
        nonlocal blocked
        if x == 0:
            return x
        blocked += 1
        if blocked == 4:
            all_blocked.set()
        try:
            await anyio.Event().wait()
        except Cancelled():
            cancelled.append(x)
            raise
        return x

    with anyio.fail_after(5):
        async with LocalExecutor(fn).map(range(5), concurrency=5) as results:
            async for index, value in results:
                assert (index, value) == (0, 0)
                await all_blocked.wait()
                break
    assert sorted(cancelled) == [1, 2, 3, 4]


async def test_map_stream_leaves_nothing_unclosed() -> None:
    """A stream iterated to the end, or never iterated, is collected without ResourceWarning."""
    ex = LocalExecutor(identity)
    assert [item async for item in ex.map(range(3), concurrency=2)] != []
    ex.map(range(3), concurrency=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_abandoned_map_stream_is_cancelled_when_collected() -> None:
    """A stream dropped mid-iteration and never closed cancels its calls once collected."""
    cancelled: list[int] = []
    blocked = 0
    all_blocked = anyio.Event()
    all_cancelled = anyio.Event()

    async def fn(x: int) -> int:
        nonlocal blocked
        if x == 0:
            return x
        blocked += 1
        if blocked == 3:
            all_blocked.set()
        try:
            await anyio.Event().wait()
        except Cancelled():
            cancelled.append(x)
            if len(cancelled) == 3:
                all_cancelled.set()
            raise
        return x

    stream = LocalExecutor(fn).map(range(4), concurrency=4)
    with anyio.fail_after(5):
        assert await stream.__anext__() == (0, 0)
        await all_blocked.wait()
        del stream
        gc.collect()
        await all_cancelled.wait()
    assert sorted(cancelled) == [1, 2, 3]


async def test_map_stream_outlives_the_task_that_started_it() -> None:
    """The calls keep running between ``__anext__`` calls made from different tasks."""
    gate = anyio.Event()

    async def fn(x: int) -> int:
        if x > 0:
            await gate.wait()
        return x

    stream = LocalExecutor(fn).map(range(4), concurrency=4)
    got: list[tuple[int, Any]] = []

    async def take_one() -> None:
        got.append(await stream.__anext__())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take_one)  # starts the pump; this task ends right after
        assert got == [(0, 0)]
        assert stream.in_flight == 3
        gate.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(take_one)
            tg.start_soon(take_one)
            tg.start_soon(take_one)
        async with stream:
            assert [item async for item in stream] == []
    assert sorted(got) == [(i, i) for i in range(4)]


async def test_map_counts_calls_and_reports_progress() -> None:
    """The stream counts calls in flight, finished and failed; on_progress sees each finish."""
    gate = anyio.Event()
    progress: list[tuple[int, int]] = []

    async def fn(x: int) -> int:
        await gate.wait()
        if x == 1:
            raise Boom("one")
        return x

    with anyio.fail_after(5):
        async with LocalExecutor(fn).map(
            range(3), concurrency=3, on_progress=lambda d, f: progress.append((d, f))
        ) as stream:
            await anyio.wait_all_tasks_blocked()
            assert (stream.in_flight, stream.finished, stream.failed) == (3, 0, 0)
            gate.set()
            results = dict([item async for item in stream])
    assert (stream.in_flight, stream.finished, stream.failed) == (0, 3, 1)
    assert progress[-1] == (3, 1) and len(progress) == 3
    assert isinstance(results[1], ExecutionFailed)


async def test_map_calls_see_the_callers_context_variables() -> None:
    """Each call of a map sees the context variables set where the stream was started."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def fn(x: int) -> str:
        return var.get()

    var.set("caller")
    results = [value async for _, value in LocalExecutor(fn).map(range(2), concurrency=2)]
    assert results == ["caller", "caller"]


class BuggyExecutor(Executor[int, int]):
    """A backend with a bug: its run() raises a plain exception, not an ExecutorError."""

    async def run(self, input: Any) -> Execution[int]:
        if input == 2:
            raise RuntimeError("backend bug")
        return Execution(output=input, duration=0.0)


def buggy_inputs() -> Iterator[int]:
    yield 0
    yield 1
    raise RuntimeError("inputs bug")


def buggy_progress(done: int, failed: int) -> None:
    if done == 2:
        raise RuntimeError("progress bug")


async def identity(x: int) -> int:
    return x


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: BuggyExecutor().map(range(5), concurrency=1), "backend bug"),
        (lambda: LocalExecutor(identity).map(buggy_inputs(), concurrency=1), "inputs bug"),
        (
            lambda: LocalExecutor(identity).map(
                range(5), concurrency=1, on_progress=buggy_progress
            ),
            "progress bug",
        ),
    ],
    ids=["backend", "inputs", "on_progress"],
)
async def test_map_reraises_a_bug(make: Any, match: str) -> None:
    """A non-ExecutorError (a bug, not a task failure) ends the stream and is re-raised as is."""
    with pytest.raises(RuntimeError, match=match):
        async for _ in make():
            pass


# -- cancellation by the caller ------------------------------------------------------------


@pytest.mark.parametrize("timeout", [30.0, None])
@pytest.mark.parametrize("method", ["execute", "run"])
async def test_caller_cancellation_propagates_cleanly(timeout: float | None, method: str) -> None:
    """Cancelling the caller cancels the task; it is not reported as a timeout or failure."""
    seen: list[str] = []

    async def blocked(x: int) -> int:
        try:
            await anyio.Event().wait()
        except Cancelled():
            seen.append("cancelled")
            raise
        return x

    ex = LocalExecutor(blocked, LocalConfig(timeout=timeout))
    # An ExecutionTimeout or ExecutionFailed would escape move_on_after and fail the test.
    with anyio.move_on_after(0.05) as scope:
        await getattr(ex, method)(1)
    assert scope.cancelled_caught
    assert seen == ["cancelled"]


@pytest.mark.parametrize("timeout", [30.0, None])
async def test_caller_cancellation_of_a_sync_function(timeout: float | None) -> None:
    """Cancelling the caller of a sync function returns at once; the thread is left to finish."""
    release = threading.Event()
    finished = threading.Event()

    def blocked(x: int) -> int:
        release.wait(10)
        finished.set()
        return x

    ex = LocalExecutor(blocked, LocalConfig(timeout=timeout))
    with anyio.move_on_after(0.05) as scope:
        await ex.execute(1)
    assert scope.cancelled_caught
    assert not finished.is_set()
    release.set()
    assert await anyio.to_thread.run_sync(finished.wait, 5)


async def test_caller_cancellation_of_execute_many() -> None:
    """Cancelling a batch's caller cancels every call in flight."""
    cancelled: list[int] = []

    async def blocked(x: int) -> int:
        try:
            await anyio.Event().wait()
        except Cancelled():
            cancelled.append(x)
            raise
        return x

    with anyio.move_on_after(0.05) as scope:
        await LocalExecutor(blocked).execute_many(range(10), concurrency=3)
    assert scope.cancelled_caught
    assert sorted(cancelled) == [0, 1, 2]


async def test_caller_cancellation_of_a_map_consumer_leaves_the_stream_usable() -> None:
    """A consumer cancelled while waiting for a result loses nothing: the calls keep going."""
    gate = anyio.Event()

    async def fn(x: int) -> int:
        await gate.wait()
        return x

    with anyio.fail_after(5):
        async with LocalExecutor(fn).map(range(5), concurrency=2) as stream:
            with anyio.move_on_after(0.05) as scope:
                await stream.__anext__()
            assert scope.cancelled_caught
            assert stream.in_flight == 2
            gate.set()
            assert sorted([item async for item in stream]) == [(i, i) for i in range(5)]


async def test_map_aclose_cancels_and_waits_for_the_calls() -> None:
    """aclose() returns only once every call it cancelled has finished its cleanup."""
    cleaned: list[int] = []
    blocked = 0
    all_blocked = anyio.Event()

    async def fn(x: int) -> int:
        nonlocal blocked
        blocked += 1
        if blocked == 3:
            all_blocked.set()
        try:
            await anyio.Event().wait()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)  # cleanup that takes a while
            cleaned.append(x)
        return x

    stream = LocalExecutor(fn).map(range(10), concurrency=3)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, stream)
            await all_blocked.wait()
            await stream.aclose()
            assert sorted(cleaned) == [0, 1, 2]
            assert stream.in_flight == 0
    assert [item async for item in stream] == []


async def _drain(stream: AsyncIterator[Any]) -> None:
    async for _ in stream:
        pass


# -- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5"])
def test_bad_timeout_is_a_config_error(timeout: Any) -> None:
    """A timeout that is not a positive number of seconds (or None) is rejected."""
    with pytest.raises(ConfigError, match="timeout") as info:
        LocalConfig(timeout=timeout)
    assert info.value.code == "CONFIG_INVALID"
    assert isinstance(info.value, ValueError)


def test_non_callable_fn_is_a_config_error() -> None:
    """LocalExecutor rejects a function that is not callable."""
    with pytest.raises(ConfigError, match="callable"):
        LocalExecutor(42)  # type: ignore[arg-type]


def test_wrong_config_type_is_a_config_error() -> None:
    """LocalExecutor rejects a config that is not a LocalConfig."""
    with pytest.raises(ConfigError, match="LocalConfig"):
        LocalExecutor(identity, {"timeout": 1.0})  # type: ignore[arg-type]


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, "2"])
async def test_bad_concurrency_is_a_config_error(concurrency: Any) -> None:
    """execute_many and map reject a concurrency that is not a positive integer."""
    ex = LocalExecutor(identity)
    with pytest.raises(ConfigError, match="concurrency"):
        await ex.execute_many([1], concurrency=concurrency)
    with pytest.raises(ConfigError, match="concurrency"):
        ex.map([1], concurrency=concurrency)


# -- the error classes ---------------------------------------------------------------------

ERRORS: list[tuple[ExecutorError, dict[str, Any]]] = [
    (ExecutorError("root"), {"code": "EXECUTOR_ERROR", "message": "root"}),
    (ConfigError("bad"), {"code": "CONFIG_INVALID", "message": "bad"}),
    (SchemaError("bad schema", source="s.json"), {"code": "SCHEMA_INVALID", "source": "s.json"}),
    (
        InputValidationError("Expected `int`", path="$.a[0]"),
        {
            "code": "INPUT_INVALID",
            "path": "$.a[0]",
            "reason": "Expected `int`",
            "message": "input is invalid at $.a[0]: Expected `int`",
        },
    ),
    (
        OutputValidationError("Expected `str`", path="$.b"),
        {"code": "OUTPUT_INVALID", "path": "$.b", "reason": "Expected `str`"},
    ),
    (ExecutionTimeout(1.5), {"code": "TIMEOUT", "timeout": 1.5}),
    (
        ExecutionFailed("it broke", details="Traceback ..."),
        {"code": "EXECUTION_FAILED", "message": "it broke", "details": "Traceback ..."},
    ),
    (
        ExecutionFailed("user code", code="USER_ERROR", details="tb", logs="err"),
        {"code": "USER_ERROR", "details": "tb", "logs": "err"},
    ),
    (
        ContainerFailed("killed", exit_code=137, oom_killed=True, logs="tail", container_id="c1"),
        {
            "code": "OOM_KILLED",
            "exit_code": 137,
            "oom_killed": True,
            "logs": "tail",
            "container_id": "c1",
        },
    ),
    (
        ContainerFailed("exited", exit_code=3),
        {"code": "EXIT_NONZERO", "exit_code": 3, "oom_killed": False},
    ),
    (ProtocolError("garbage", received=b"oops"), {"code": "PROTOCOL_ERROR", "received": "oops"}),
    (OutputTooLarge(1024), {"code": "OUTPUT_TOO_LARGE", "limit": 1024}),
    (EngineUnavailable("no engine", engine="unix:///x"), {"code": "ENGINE_UNAVAILABLE"}),
    (ImageNotFound("img:1", engine="e"), {"code": "IMAGE_NOT_FOUND", "image": "img:1"}),
]


@pytest.mark.parametrize(("error", "expected"), ERRORS, ids=lambda v: type(v).__name__)
def test_error_to_dict(error: ExecutorError, expected: dict[str, Any]) -> None:
    """to_dict() names the class and carries the code, message and data attributes."""
    data = error.to_dict()
    assert data["type"] == type(error).__name__
    assert data["message"] == error.message == str(error)
    assert expected.items() <= data.items()
    json.dumps(data)  # JSON-ready


@pytest.mark.parametrize(("error", "expected"), ERRORS, ids=lambda v: type(v).__name__)
def test_error_pickles(error: ExecutorError, expected: dict[str, Any]) -> None:
    """Every error class survives a pickle round trip with its class, code and data."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.to_dict() == error.to_dict()
    assert vars(copy) == vars(error)
    assert copy.args == error.args


def test_error_hierarchy() -> None:
    """Errors subclass the builtins whose meaning they share."""
    assert issubclass(ValidationError, ValueError)
    assert issubclass(InputValidationError, ValidationError)
    assert issubclass(OutputValidationError, ValidationError)
    assert issubclass(ExecutionTimeout, TimeoutError)
    assert issubclass(SchemaError, ValueError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(EngineUnavailable, ConnectionError)
    assert issubclass(ImageNotFound, LookupError)
    for cls in (ValidationError, ExecutionTimeout, ExecutionFailed, ContainerFailed, SchemaError):
        assert issubclass(cls, ExecutorError)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_failure_details_show_only_the_users_frames(kind: str) -> None:
    """ExecutionFailed.details starts at the task's own frame: no executor or anyio frames."""

    def inner(x: int) -> int:
        raise ValueError(f"bad {x}")

    async def async_task(x: int) -> int:
        return inner(x)

    def sync_task(x: int) -> int:
        return inner(x)

    fn = async_task if kind == "async" else sync_task
    with pytest.raises(ExecutionFailed) as info:
        await LocalExecutor(fn).execute(1)
    details = info.value.details or ""
    assert f"in {fn.__name__}" in details and "in inner" in details
    assert "executor/_local.py" not in details and "anyio" not in details


async def test_stream_yields_the_execution_and_raises_failures() -> None:
    """LocalExecutor.stream (the base default) yields the Execution alone, or raises the
    call's error from the iteration, on both backends; leaving early cancels the call."""

    async def task(n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        if n == 0:
            await anyio.sleep(3600)
        return n * 2

    async with LocalExecutor[int, int](task) as ex:
        async with ex.stream(21) as events:
            seen = [event async for event in events]
        assert len(seen) == 1 and isinstance(seen[0], Execution) and seen[0].output == 42
        with pytest.raises(ExecutionFailed):
            async with ex.stream(-1) as events:
                async for _ in events:
                    pass
        with anyio.fail_after(5):
            async with ex.stream(0):
                pass  # left at once: the hanging call is cancelled, not awaited


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_calls_after_aclose_raise_executor_closed(kind: str) -> None:
    """After aclose(), run, execute, stream, execute_many, map and `async with` raise
    ExecutorClosed (`CLOSED`), as the README promises, and the task is never called."""
    calls: list[int] = []

    async def async_task(n: int) -> int:
        calls.append(n)
        return n

    def sync_task(n: int) -> int:
        calls.append(n)
        return n

    ex = LocalExecutor[int, int](async_task if kind == "async" else sync_task)
    assert await ex.execute(1) == 1
    await ex.aclose()
    await ex.aclose()  # safe twice
    with pytest.raises(ExecutorClosed) as info:
        await ex.execute(2)
    assert info.value.code == "CLOSED"
    with pytest.raises(ExecutorClosed):
        await ex.run(2)
    with pytest.raises(ExecutorClosed):
        async with ex.stream(2) as events:
            async for _ in events:
                pass
    with pytest.raises(ExecutorClosed):
        await ex.execute_many([2, 3])
    assert [type(r) for r in await ex.execute_many([2], return_exceptions=True)] == [ExecutorClosed]
    assert [type(r) for _, r in [pair async for pair in ex.map([2, 3])]] == [ExecutorClosed] * 2
    with pytest.raises(ExecutorClosed):
        async with ex:
            pass
    assert calls == [1]
