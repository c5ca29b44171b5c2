"""``LocalExecutor``: run a trusted function in-process with the executor contract.

The hot path is kept short: conversion and validation closures are prepared at construction,
and the timeout costs nothing for an ``async def`` with no ``await`` in it (it cannot suspend,
so it could not be cancelled anyway). Any other coroutine runs inside the deadline's cancel
scope from its first step, and the scope's timer is armed when it first suspends, so that it
is cancelled exactly at ``start + timeout``. The scope must not be entered lazily at the first
suspension: by then the coroutine may hold cancel scopes of its own (``trio.sleep`` opens one
before it suspends; so do ``anyio.fail_after``, task groups and ``to_thread.run_sync``), and a
scope entered inside them breaks the task's scope stack when they exit.
"""

from __future__ import annotations

import dis
import functools
import inspect
import os
import sys
import time
import traceback
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._base import Execution, Executor, resolve_types
from ._errors import ConfigError, ExecutionFailed, ExecutionTimeout, ExecutorClosed
from ._observe import instrument, observer
from ._schema import Codec, SchemaSource, codecs
from ._settings import boolean, checked_keywords, optional, seconds, setting, validate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

_perf = time.perf_counter


@checked_keywords()
@dataclass(frozen=True, slots=True)
class LocalConfig:
    """Settings of a :class:`LocalExecutor`.

    ``timeout`` is in seconds (``None``: no limit). ``schema_in``/``schema_out`` accept a dict,
    JSON text/bytes or a path; when absent the schema is derived from the types. With
    ``validate=False`` values are still converted to their types but not checked against the
    schemas.
    """

    timeout: float | None = setting(30.0, optional(seconds))
    schema_in: SchemaSource = None
    schema_out: SchemaSource = None
    validate: bool = setting(True, boolean)

    def __post_init__(self) -> None:
        validate(self)


#: Where frames that are not the user's come from: this package, anyio, and the backends'
#: own libraries (trio re-raises a worker thread's error through ``outcome``).
_LIBRARIES = (__package__ or "executor", "anyio", "trio", "outcome")


def _user_frames(exc: BaseException) -> types.TracebackType | None:
    """The traceback from the first frame outside this package, anyio and the backend."""
    dirs = tuple(
        os.path.dirname(module.__file__) + os.sep
        for name in _LIBRARIES
        if (module := sys.modules.get(name)) is not None and module.__file__ is not None
    )
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(dirs):
        tb = tb.tb_next
    return tb or exc.__traceback__


class _Expired(Exception):
    """Internal: the deadline passed (turned into ExecutionTimeout by the caller)."""


_YIELD_VALUE = dis.opmap["YIELD_VALUE"]


def _can_suspend(fn: Any) -> bool:
    """Can a call of the coroutine function ``fn`` suspend (and so be cancelled)?

    A coroutine suspends only at a ``YIELD_VALUE`` in its own frame, which is what every
    ``await``, ``async for`` and ``async with`` compiles to; so an ``async def`` whose body has
    none runs to completion in one step. Anything whose code cannot be seen (a C function, a
    plain function returning an awaitable) is assumed to suspend.
    """
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif inspect.ismethod(fn):
            fn = fn.__func__
        else:
            break
    code = getattr(fn, "__code__", None)
    if code is None:
        call = getattr(type(fn), "__call__", None)  # noqa: B004 - an async callable object
        code = getattr(call, "__code__", None)
    if not isinstance(code, types.CodeType) or not code.co_flags & inspect.CO_COROUTINE:
        return True
    return any(op.opcode == _YIELD_VALUE for op in dis.get_instructions(code))


@types.coroutine
def _run_with_deadline(coro: Coroutine[Any, Any, T], timeout: float) -> Generator[Any, Any, T]:
    """Await ``coro`` in the current task and cancel it ``timeout`` seconds from now.

    The cancel scope is entered before the coroutine's first step, so every scope the coroutine
    opens nests inside it; only its deadline waits for the first suspension, so a call that
    completes in one step never schedules a timer. Raises ``_Expired`` when the deadline hits.
    """
    started = _perf()
    with anyio.CancelScope() as scope:
        try:
            pending = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        scope.deadline = anyio.current_time() + timeout - (_perf() - started)
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation or throw(): forward into the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            else:
                # Under trio a cancellation arrives here, sent as an outcome for the coroutine
                # to unwrap, rather than thrown; either way the coroutine raises it.
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
    # Only reached when the scope swallowed its own cancellation.
    raise _Expired


@checked_keywords()
class LocalExecutor(Executor[A, B], Generic[A, B]):
    """Run ``fn`` in-process: an async function in the caller's task, a plain one in a thread.

    Types come from the subscription (``LocalExecutor[In, Out](fn)``), then from
    ``input_type``/``output_type``, then from ``fn``'s annotations. A sync function that
    overruns its timeout cannot be stopped: ``ExecutionTimeout`` is raised on time and its
    worker thread is abandoned to finish on its own. After :meth:`aclose` every call raises
    :class:`ExecutorClosed`.
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
        self._in: Codec[A]
        self._out: Codec[B]
        self._in, self._out = codecs(self.config, self.input_type, self.output_type)
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        )
        self._timeout = self.config.timeout
        self._invoke = self._invoker()
        self._closed = False
        self._telemetry = instrument(self, kind="local")

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
            if timeout is None or not _can_suspend(fn):
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

    async def __aenter__(self) -> LocalExecutor[A, B]:
        if self._closed:
            raise ExecutorClosed()
        return self

    async def aclose(self) -> None:
        """Refuse further calls (:class:`ExecutorClosed`); a call in flight runs to its end."""
        self._closed = True

    async def execute(self, input: A | Any) -> B:
        if self._closed:
            raise ExecutorClosed()
        if (observe := observer()) is not None:  # OpenTelemetry configured: a span, metrics
            return (await observe.call(self._telemetry, self._run, input)).output
        value = self._in.coerce(input)
        try:
            result = await self._invoke(value)
        except _Expired:
            raise ExecutionTimeout(self._timeout or 0.0) from None
        except Exception as exc:
            raise self._failed(exc) from exc
        return self._out.coerce(result)

    async def run(self, input: A | Any) -> Execution[B]:
        if self._closed:
            raise ExecutorClosed()
        if (observe := observer()) is not None:
            return await observe.call(self._telemetry, self._run, input)
        return await self._run(input)

    async def _run(self, input: A | Any) -> Execution[B]:
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
