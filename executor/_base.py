"""The ``Executor[A, B]`` interface shared by every backend, and its batch helpers.

A backend implements :meth:`Executor.run` (and usually a faster :meth:`Executor.execute`);
``execute_many`` and ``map`` are built here on top of ``execute`` so every backend gets the
same ordering, concurrency and error semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import typing
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

from ._code import Usage  # noqa: TC001 (msgspec resolves the field types at run time)
from ._errors import ConfigError, ExecutorError
from ._stream import ExecutionStream

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from anyio.abc import ObjectSendStream, TaskGroup

    from ._stream import Tap

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

#: Input accepted by ``execute``: an ``A``, or plain JSON-like data converted to ``A``.
Inputs = Iterable[Any] | AsyncIterable[Any]
#: Called after each finished call of a batch with (finished, failed) counts so far.
ProgressCallback = Callable[[int, int], None]


class Execution(msgspec.Struct, Generic[B], frozen=True, kw_only=True):
    """The result of :meth:`Executor.run`: the output plus what happened during the call.

    ``duration`` and ``timings`` are in seconds; ``timings`` maps a phase name (``validate_in``,
    ``create``, ``start``, ``call``, ``validate_out``, ...) to its duration. ``logs`` is the
    task's stderr (empty for local calls), ``logs_truncated`` whether it was cut at
    ``max_log_bytes``. The container fields are ``None`` for local calls; ``exit_code`` is
    ``None`` also when the call returned before the container's exit was seen (the normal case:
    a response is taken as soon as it is complete). ``files`` holds what the task left in
    ``ContainerConfig.collect``, by path relative to it (empty without ``collect``).
    ``usage`` is what the task used as its runner measured it (every runner here: the kernel's
    counters of the task process and the children it waited for, over the call; per runner and
    mode in docs/RUNNERS.md, "Usage"); ``None`` for local calls and runners that do not report
    it, ``peak_memory`` ``None`` where it cannot be the call's own (reuse mode under gVisor).
    """

    output: B
    duration: float
    timings: dict[str, float] = {}
    logs: str = ""
    logs_truncated: bool = False
    container_id: str | None = None
    exit_code: int | None = None
    image: str | None = None
    engine: str | None = None
    files: dict[str, bytes] = {}
    usage: Usage | None = None


class _TypedAlias:
    """``Executor[In, Out]`` with concrete types: calling it passes the types to ``__init__``.

    ``typing``'s own alias only sets ``__orig_class__`` after ``__init__`` returns, too late to
    derive schemas at construction; everything else is delegated to that alias.
    """

    __slots__ = ("_alias", "_types")

    def __init__(self, alias: Any, types: tuple[Any, Any]) -> None:
        self._alias = alias
        self._types = types

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_types", self._types)
        instance = self._alias.__origin__(*args, **kwargs)
        with contextlib.suppress(AttributeError, TypeError):
            instance.__orig_class__ = self._alias
        return instance

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        return self._alias.__mro_entries__(bases)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._alias, name)

    def __repr__(self) -> str:
        return repr(self._alias)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _TypedAlias):
            other = other._alias
        return bool(self._alias == other)

    def __hash__(self) -> int:
        return hash(self._alias)


def _is_concrete(param: Any) -> bool:
    return not isinstance(param, TypeVar) and not getattr(param, "__parameters__", ())


def types_from_class(cls: type) -> tuple[Any, Any] | None:
    """Find ``(A, B)`` from ``class MyExecutor(LocalExecutor[In, Out])``-style subclassing."""
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = getattr(base, "__origin__", None)
            args: tuple[Any, ...] = getattr(base, "__args__", ())
            if (
                isinstance(origin, type)
                and issubclass(origin, Executor)
                and len(args) == 2
                and all(_is_concrete(a) for a in args)
            ):
                return args[0], args[1]
    return None


class Executor(ABC, Generic[A, B]):
    """Run a typed task: ``await ex.execute(input) -> output``.

    Every executor is an async context manager; ``aclose()`` releases what it holds
    (containers, engine connections). Subscribe it with concrete types,
    ``LocalExecutor[In, Out](fn)``, to convert and validate inputs and outputs.
    """

    def __class_getitem__(cls, params: Any) -> Any:
        alias = super().__class_getitem__(params)  # type: ignore[misc]
        args = params if isinstance(params, tuple) else (params,)
        if len(args) == 2 and all(_is_concrete(a) for a in args):
            return _TypedAlias(alias, (args[0], args[1]))
        return alias

    # -- what a backend implements ---------------------------------------------------------

    @abstractmethod
    async def run(self, input: A | Any) -> Execution[B]:
        """Run one call and return its output with logs, timings and backend metadata.

        Raises an :class:`ExecutorError` subclass on any failure.
        """

    async def execute(self, input: A | Any) -> B:
        """Run one call and return its output (``input`` may be an ``A`` or JSON-like data).

        Raises :class:`InputValidationError` before anything runs when the input does not
        match; :class:`ExecutionTimeout`, :class:`ExecutionFailed`,
        :class:`OutputValidationError` and the container errors as documented on each.
        """
        return (await self.run(input)).output

    def stream(self, input: A | Any) -> ExecutionStream[B]:
        """Run one call, yielding what its task writes as it happens, then its Execution.

        Use it as ``async with ex.stream(input) as events: async for event in events:``;
        each event is a :class:`LogLine` and the last one the :class:`Execution` (a failure
        is raised from the iteration). Leaving the block early cancels the call. A
        :class:`ContainerExecutor` streams the task's stderr (and stdout, which the runners
        send there) live; an executor without live logs yields the Execution alone.
        """

        async def call(tap: Tap) -> Execution[B]:
            return await self.run(input)

        return ExecutionStream(call)

    async def aclose(self) -> None:
        """Release what the executor holds. Safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- batches ---------------------------------------------------------------------------

    async def execute_many(
        self,
        inputs: Inputs,
        *,
        concurrency: int = 8,
        return_exceptions: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> list[B | ExecutorError]:
        """Run every input, at most ``concurrency`` at a time; results come in input order.

        With ``return_exceptions=False`` the first failure cancels the calls still running
        and is raised; with ``True`` each failure takes its input's place in the list.
        ``inputs`` may be any iterable or async iterable; it is consumed lazily.
        """
        _check_concurrency(concurrency)
        results: dict[int, B | ExecutorError] = {}
        first_error: list[ExecutorError] = []
        counts = [0, 0]  # finished, failed
        execute = self.execute

        async def one(index: int, item: Any) -> None:
            if first_error:
                return  # cancelled: start nothing new while the cancellation lands
            try:
                results[index] = await execute(item)
            except ExecutorError as exc:
                counts[1] += 1
                if not return_exceptions:
                    if not first_error:
                        first_error.append(exc)
                    tg.cancel_scope.cancel()
                    return
                results[index] = exc
            counts[0] += 1
            if on_progress is not None:
                on_progress(counts[0], counts[1])

        try:
            async with anyio.create_task_group() as tg:
                await _run_workers(inputs, concurrency, one, tg)
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        if first_error:
            raise first_error[0]
        return [results[i] for i in range(len(results))]

    def map(
        self,
        inputs: Inputs,
        *,
        concurrency: int = 8,
        on_progress: ProgressCallback | None = None,
    ) -> ResultStream[B]:
        """Stream ``(index, output or ExecutorError)`` pairs as each call finishes.

        At most ``concurrency`` calls run at once and at most ``concurrency`` finished results
        wait for the consumer, so memory stays bounded however long ``inputs`` is (a huge
        iterator or async iterator is consumed lazily). Use it as ``async for`` directly, or
        as ``async with ex.map(...) as results:`` to stop early and clean up at once.
        """
        _check_concurrency(concurrency)
        return ResultStream(self, inputs, concurrency, on_progress)


def _check_concurrency(concurrency: int) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")


async def _run_workers(
    inputs: Inputs,
    concurrency: int,
    handle: Callable[[int, Any], Awaitable[None]],
    tg: TaskGroup,
) -> None:
    """Start ``concurrency`` workers in ``tg`` that pull ``(index, item)`` lazily and handle it.

    Long-lived workers instead of a task per input: a batch of a million costs a million
    awaits, not a million tasks. ``inputs`` is consumed only as fast as workers free up.
    """
    if isinstance(inputs, AsyncIterable):
        items = _aenumerate(inputs)
        lock = anyio.Lock()

        async def pull() -> tuple[int, Any] | None:
            async with lock:  # an async iterator may not be advanced concurrently
                try:
                    return await items.__anext__()
                except StopAsyncIteration:
                    return None

    else:
        numbered = enumerate(inputs)

        async def pull() -> tuple[int, Any] | None:
            return next(numbered, None)

    async def worker() -> None:
        while (pulled := await pull()) is not None:
            await handle(*pulled)

    for _ in range(concurrency):
        tg.start_soon(worker)


async def _aenumerate(items: Inputs) -> AsyncIterator[tuple[int, Any]]:
    index = 0
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield index, item
            index += 1
    else:
        for item in items:
            yield index, item
            index += 1


class ResultStream(AsyncIterator[tuple[int, "B | ExecutorError"]], Generic[B]):
    """The async iterator returned by :meth:`Executor.map`.

    The calls run in a background task started on first use. Leaving an ``async with`` block
    (or calling :meth:`aclose`) cancels what is still running and waits for its cleanup; an
    abandoned stream is cancelled when garbage-collected.
    """

    def __init__(
        self,
        executor: Executor[Any, B],
        inputs: Inputs,
        concurrency: int,
        on_progress: ProgressCallback | None,
    ) -> None:
        self._executor = executor
        self._inputs = inputs
        self._concurrency = concurrency
        self._on_progress = on_progress
        self._send, self._receive = anyio.create_memory_object_stream[
            tuple[int, "B | ExecutorError"]
        ](concurrency)
        self._pump: _Background | None = None
        self._closed = False
        self._state = _MapState()

    @property
    def in_flight(self) -> int:
        """Calls started and not yet finished."""
        return self._state.in_flight

    @property
    def finished(self) -> int:
        """Calls finished (successfully or not)."""
        return self._state.finished

    @property
    def failed(self) -> int:
        """Calls that ended in an :class:`ExecutorError`."""
        return self._state.failed

    def _start(self) -> None:
        if self._pump is None:
            # The pump must not reference the stream, or an abandoned stream would never be
            # collected (and so never cancelled).
            self._pump = _Background(
                _pump,
                self._executor.execute,
                self._inputs,
                self._concurrency,
                self._on_progress,
                self._send,
                self._state,
            )
            del self._executor, self._inputs, self._on_progress

    def __aiter__(self) -> ResultStream[B]:
        return self

    async def __anext__(self) -> tuple[int, B | ExecutorError]:
        self._start()
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            # Exhausted (or closed by aclose): close our end so it is not reported unclosed.
            self._receive.close()
            await self._reraise()
            raise StopAsyncIteration from None

    async def _reraise(self) -> None:
        pump = self._pump
        if pump is not None and not self._closed:
            error = await pump.wait()
            if error is not None and not isinstance(error, anyio.get_cancelled_exc_class()):
                raise _unwrap(error)

    async def aclose(self) -> None:
        """Cancel the calls still running and wait until they are cleaned up."""
        # Closed on purpose: whatever the cancelled pump ends with (a worker woken by the
        # closed stream may raise BrokenResourceError) is not the consumer's error.
        self._closed = True
        pump = self._pump
        if pump is None:
            self._send.close()
        else:
            pump.cancel()
        self._receive.close()
        if pump is not None:
            with anyio.CancelScope(shield=True):
                await pump.wait()

    async def __aenter__(self) -> ResultStream[B]:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Close our ends so an abandoned (or never iterated) stream is not reported unclosed;
        # a running pump closes the send end itself as it unwinds.
        pump = self._pump
        if pump is None:
            self._receive.close()
            self._send.close()
        else:
            pump.abandon(self._receive.close)


def _start_task(
    fn: Callable[[], Coroutine[Any, Any, None]],
) -> Callable[[Callable[[], None]], object]:
    """Start ``fn()`` in a task of its own on the running backend; return the backend's
    thread-safe way to run a callback on its loop soon.

    The one backend-specific function behind :class:`_Background`: anyio has no task that
    outlives the block that started it. trio's system tasks do not inherit context variables,
    so the caller's are passed explicitly, as asyncio's ``create_task`` does by itself.
    """
    if _current_backend() == "trio":
        import trio

        trio.lowlevel.spawn_system_task(fn, context=contextvars.copy_context())
        return trio.lowlevel.current_trio_token().run_sync_soon
    loop = asyncio.get_running_loop()
    task = loop.create_task(fn())
    _RUNNING.add(task)  # the loop holds its tasks weakly
    task.add_done_callback(_RUNNING.discard)
    return loop.call_soon_threadsafe


_RUNNING: set[asyncio.Task[None]] = set()


def _current_backend() -> str:
    try:
        import sniffio
    except ModuleNotFoundError:  # trio depends on sniffio: without it only asyncio can run
        return "asyncio"
    return sniffio.current_async_library()


class _Background:
    """A task for work that outlives the call that starts it: a map's pump.

    A task group cannot hold the pump. A group must be entered and left by one task, around
    the code that runs while it is open; a ``ResultStream`` has no such block: it starts on the
    first ``__anext__``, may be iterated from several tasks, and may be dropped unclosed. So the
    pump gets a task of its own (:func:`_start_task`), and everything else is anyio: the task
    runs inside a cancel scope this object owns, reports through an Event, and keeps its
    exception for whoever waits.
    """

    __slots__ = ("_call_soon", "_done", "_error", "_scope")

    def __init__(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._error: BaseException | None = None
        self._call_soon = _start_task(lambda: self._run(fn, *args))

    async def _run(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            with self._scope:
                await fn(*args)
        except BaseException as exc:  # a task of its own has nobody to raise to: keep it
            self._error = exc
        finally:
            self._done.set()

    def cancel(self) -> None:
        """Cancel the work (from the loop's thread)."""
        self._scope.cancel()

    async def wait(self) -> BaseException | None:
        """Wait until the work has ended; return what it raised, if anything."""
        await self._done.wait()
        return self._error

    def abandon(self, close: Callable[[], None]) -> None:
        """Cancel the work and call ``close`` from a finalizer.

        A finalizer may run in another thread or in the middle of the loop's own code, so both
        are handed to the loop; when the loop is already gone, the work went with it.
        """
        if self._done.is_set():  # the usual case: a stream read to its end
            close()
            return
        scope = self._scope

        def cancel() -> None:
            scope.cancel()
            close()

        try:
            self._call_soon(cancel)
        except RuntimeError:  # asyncio's loop is closed, or trio's run has finished
            close()


class _MapState:
    __slots__ = ("failed", "finished", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.finished = 0
        self.failed = 0


async def _pump(
    execute: Callable[[Any], Awaitable[Any]],
    inputs: Inputs,
    concurrency: int,
    on_progress: ProgressCallback | None,
    send: ObjectSendStream[tuple[int, Any]],
    state: _MapState,
) -> None:
    async def one(index: int, item: Any) -> None:
        result: Any
        state.in_flight += 1
        try:
            result = await execute(item)
        except ExecutorError as exc:
            result = exc
            state.failed += 1
        finally:
            state.in_flight -= 1
        state.finished += 1
        if on_progress is not None:
            on_progress(state.finished, state.failed)
        await send.send((index, result))

    async with send, anyio.create_task_group() as tg:
        await _run_workers(inputs, concurrency, one, tg)


def _unwrap(exc: BaseException) -> BaseException:
    """A failure inside the task group arrives as a one-item ExceptionGroup: raise the item."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def resolve_types(
    cls: type,
    subscribed: tuple[Any, Any] | None,
    input_type: Any,
    output_type: Any,
    fn: Callable[..., Any] | None = None,
) -> tuple[Any, Any]:
    """Pick ``(A, B)``: the subscription, then explicit arguments, then ``fn``'s annotations."""
    declared = subscribed or types_from_class(cls)
    a = declared[0] if declared else input_type
    b = declared[1] if declared else output_type
    if fn is not None and (a is None or b is None):
        hints = _annotations(fn)
        if a is None:
            a = hints[0]
        if b is None:
            b = hints[1]
    return (Any if a is None else a), (Any if b is None else b)


def _annotations(fn: Callable[..., Any]) -> tuple[Any, Any]:
    import inspect

    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: treat as unknown
        hints = {}
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    a = hints.get(params[0].name) if params else None
    b = hints.get("return")
    if b is type(None):
        b = None
    # An async function's annotation is the awaited type already; unwrap Awaitable[...] too.
    origin = typing.get_origin(b)
    if origin is not None and getattr(origin, "__name__", "") in {"Awaitable", "Coroutine"}:
        b = typing.get_args(b)[-1]
    return a, b
