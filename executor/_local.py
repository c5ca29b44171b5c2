"""``LocalExecutor``: run a trusted function in-process with the executor contract.

The hot path is kept short: conversion and validation closures are prepared at construction,
and the timeout's cancel scope is only entered once the coroutine actually suspends (a
coroutine that finishes without suspending could not have been cancelled anyway). A coroutine
that does suspend is cancelled exactly at ``start + timeout``.
"""

from __future__ import annotations

import inspect
import os
import time
import traceback
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._base import Execution, Executor, resolve_types
from ._errors import ConfigError, ExecutionFailed, ExecutionTimeout
from ._observe import instrument
from ._schema import Codec, SchemaSource

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

_perf = time.perf_counter


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """Settings of a :class:`LocalExecutor`.

    ``timeout`` is in seconds (``None``: no limit). ``schema_in``/``schema_out`` accept a dict,
    JSON text/bytes or a path; when absent the schema is derived from the types. With
    ``validate=False`` values are still converted to their types but not checked against the
    schemas.
    """

    timeout: float | None = 30.0
    schema_in: SchemaSource = None
    schema_out: SchemaSource = None
    validate: bool = True

    def __post_init__(self) -> None:
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not (isinstance(self.timeout, int | float) and self.timeout > 0)
        ):
            raise ConfigError(
                f"timeout must be a positive number of seconds or None, got {self.timeout!r}"
            )


_OWN_DIRS = tuple(
    os.path.dirname(path) + os.sep for path in (__file__, anyio.__file__) if path is not None
)


def _user_frames(exc: BaseException) -> types.TracebackType | None:
    """The traceback from the first frame outside this package and anyio (the user's code)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_DIRS):
        tb = tb.tb_next
    return tb or exc.__traceback__


class _Expired(Exception):
    """Internal: the deadline passed (turned into ExecutionTimeout by the caller)."""


@types.coroutine
def _run_with_deadline(coro: Coroutine[Any, Any, T], timeout: float) -> Generator[Any, Any, T]:
    """Await ``coro`` in the current task, arming a cancel scope only if it suspends."""
    started = _perf()
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except BaseException:
        coro.close()
        raise
    deadline = anyio.current_time() + timeout - (_perf() - started)
    with anyio.CancelScope(deadline=deadline) as scope:
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # cancellation or throw(): forward into the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
    # Only reached when the scope swallowed its own cancellation.
    assert scope.cancelled_caught
    raise _Expired


class LocalExecutor(Executor[A, B], Generic[A, B]):
    """Run ``fn`` in-process: an async function in the caller's task, a plain one in a thread.

    Types come from the subscription (``LocalExecutor[In, Out](fn)``), then from
    ``input_type``/``output_type``, then from ``fn``'s annotations. A sync function that
    overruns its timeout cannot be stopped: ``ExecutionTimeout`` is raised on time and its
    worker thread is abandoned to finish on its own.
    """

    def __init__(
        self,
        fn: Callable[[A], Awaitable[B]] | Callable[[A], B],
        config: LocalConfig | None = None,
        *,
        input_type: Any = None,
        output_type: Any = None,
        _types: tuple[Any, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"fn must be callable, got {type(fn).__name__}")
        self.config = config if config is not None else LocalConfig()
        if not isinstance(self.config, LocalConfig):
            raise ConfigError(f"config must be a LocalConfig, got {type(self.config).__name__}")
        self.fn = fn
        self.input_type, self.output_type = resolve_types(
            type(self), _types, input_type, output_type, fn
        )
        self._in: Codec[A] = Codec(
            self.input_type, self.config.schema_in, which="in", validate=self.config.validate
        )
        self._out: Codec[B] = Codec(
            self.output_type, self.config.schema_out, which="out", validate=self.config.validate
        )
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        )
        self._timeout = self.config.timeout
        self._invoke = self._invoker()
        instrument(self, kind="local")

    @property
    def schema_in(self) -> dict[str, Any] | None:
        """The input schema in force (explicit or derived), or ``None``."""
        return self._in.schema

    @property
    def schema_out(self) -> dict[str, Any] | None:
        """The output schema in force (explicit or derived), or ``None``."""
        return self._out.schema

    def _invoker(self) -> Callable[[A], Awaitable[Any]]:
        """Choose, once, how a call is made: async or thread, with or without a deadline."""
        fn: Any = self.fn
        timeout = self._timeout
        if self._is_async:
            if timeout is None:
                return fn  # type: ignore[no-any-return]
            return lambda value: _run_with_deadline(fn(value), timeout)
        if timeout is None:
            # Abandon the thread if the caller is cancelled, as with a timeout armed below.
            return lambda value: anyio.to_thread.run_sync(fn, value, abandon_on_cancel=True)

        async def in_thread(value: A) -> Any:
            with anyio.move_on_after(timeout):
                return await anyio.to_thread.run_sync(fn, value, abandon_on_cancel=True)
            raise _Expired

        return in_thread

    async def execute(self, input: A | Any) -> B:
        value = self._in.coerce(input)
        try:
            result = await self._invoke(value)
        except _Expired:
            raise ExecutionTimeout(self._timeout or 0.0) from None
        except Exception as exc:
            raise self._failed(exc) from exc
        return self._out.coerce(result)

    async def run(self, input: A | Any) -> Execution[B]:
        t0 = _perf()
        value = self._in.coerce(input)
        t1 = _perf()
        try:
            result = await self._invoke(value)
        except _Expired:
            raise ExecutionTimeout(self._timeout or 0.0) from None
        except Exception as exc:
            raise self._failed(exc) from exc
        t2 = _perf()
        output = self._out.coerce(result)
        t3 = _perf()
        return Execution(
            output=output,
            duration=t3 - t0,
            timings={"validate_in": t1 - t0, "call": t2 - t1, "validate_out": t3 - t2},
        )

    @staticmethod
    def _failed(exc: Exception) -> ExecutionFailed:
        return ExecutionFailed(
            f"the task raised {type(exc).__name__}: {exc}",
            details="".join(traceback.format_exception(type(exc), exc, _user_frames(exc))),
        )
