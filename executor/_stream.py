"""A call as it happens: :class:`LogLine` events while the task runs, then its ``Execution``.

:meth:`Executor.stream` returns an :class:`ExecutionStream`, an async context manager that
runs the call in a task of its own and yields each line the task writes as it arrives, then
the final :class:`~executor.Execution` (or raises the call's error). Leaving the block early
cancels the call, with the same cleanup as a cancelled ``run()``.

The live tap is one optional callback in the container exchange
(:func:`executor.container.exchange.exchange`): it receives the stderr bytes that also go to
``Execution.logs`` (so it is capped by ``max_log_bytes`` as they are), and this module cuts
them into lines only when the consumer asks for the next event. A call without a tap (``run``)
pays one ``is not None`` test per stderr frame.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
import msgspec

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from types import TracebackType

    from anyio.abc import TaskGroup

    from ._base import Execution

__all__ = ["ExecutionStream", "LogLine", "Tap"]

B = TypeVar("B")

_perf = time.perf_counter
#: Chunks kept apart (each with its arrival time) while the consumer lags; beyond this they
#: are merged, so a flood of tiny writes costs memory in bytes, not in objects.
_MAX_CHUNKS = 1024


class LogLine(msgspec.Struct, frozen=True):
    """One line a call's task wrote, yielded by :meth:`Executor.stream` as it arrives.

    ``stream`` is ``"stderr"`` for a typed task (in a container the runners point the task's
    stdout at stderr, so ``print`` lands there too); for a
    :class:`~executor.CodeExecutor` program it is ``"stdout"`` or ``"stderr"``, and ``"log"``
    for anything its runner wrote itself. ``text`` is the line without its newline (UTF-8,
    invalid bytes replaced). ``time`` is when it arrived, in seconds since the stream began.
    """

    stream: str
    text: str
    time: float


class Tap:
    """What a streamed call feeds: its stderr bytes as they arrive, and the call's log marker
    (set by the executor before the request goes out), whose line ends the task's logs."""

    __slots__ = ("feed", "marker")

    def __init__(self, feed: Callable[[bytes], None]) -> None:
        self.feed = feed
        self.marker = b""

    def __call__(self, data: bytes) -> None:
        self.feed(data)


#: Turns one raw line into ``(stream name, text bytes)``.
Classify = Callable[[bytes], tuple[str, bytes]]


def _stderr(line: bytes) -> tuple[str, bytes]:
    return "stderr", line


class ExecutionStream(Generic[B]):
    """``async with ex.stream(input) as events: async for event in events: ...``

    Yields :class:`LogLine` events, then the call's :class:`~executor.Execution` as the last
    event; a failed call raises its :class:`~executor.ExecutorError` from the iteration
    instead (after the lines that came before it). Timeouts behave as in ``run()``. Leaving
    the block before the end, or being cancelled, cancels the call: its container is removed
    before the block exits. Lines are held for a slow consumer up to ``max_log_bytes``.
    """

    def __init__(
        self,
        call: Callable[[Tap], Awaitable[Execution[B]]],
        *,
        classify: Classify | None = None,
    ) -> None:
        self._call = call
        self._classify = classify or _stderr
        self._tap = Tap(self._feed)
        self._chunks: deque[tuple[float, bytes]] = deque()
        self._partial = bytearray()
        self._partial_time = 0.0
        self._lines: deque[LogLine] = deque()
        self._ended = False  # the marker line was seen: nothing after it is the task's
        self._wake = anyio.Event()
        self._done = False
        self._result: Execution[B] | None = None
        self._error: BaseException | None = None
        self._finished = False
        self._tg: TaskGroup | None = None
        self._t0 = _perf()

    # -- the call ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            self._result = await self._call(self._tap)
        except Exception as exc:  # the call's error: raised to the consumer, in order
            self._error = exc
        finally:
            self._done = True
            self._wake.set()

    def _feed(self, data: bytes) -> None:
        now = _perf() - self._t0
        chunks = self._chunks
        if len(chunks) >= _MAX_CHUNKS:
            _, last = chunks.pop()
            data = last + data
        chunks.append((now, data))
        self._wake.set()

    # -- lines -------------------------------------------------------------------------------

    def _split(self, when: float, data: bytes) -> None:
        if self._ended:
            return
        partial = self._partial
        scan = len(partial)
        partial += data
        self._partial_time = when
        start = 0
        marker = self._tap.marker
        while (end := partial.find(b"\n", scan)) >= 0:
            line = bytes(partial[start:end])
            start = scan = end + 1
            if marker and line.endswith(marker):
                # The runner writes the marker after the task's last byte, which may not
                # have ended its line: what precedes it is the task's.
                if len(line) > len(marker):
                    self._emit(when, line[: -len(marker)])
                self._ended = True
                partial.clear()
                return
            self._emit(when, line)
        del partial[:start]

    def _emit(self, when: float, line: bytes) -> None:
        stream, text = self._classify(line)
        self._lines.append(LogLine(stream, text.decode("utf-8", "replace"), when))

    # -- the async iterator and context manager ----------------------------------------------

    def __aiter__(self) -> ExecutionStream[B]:
        return self

    async def __anext__(self) -> LogLine | Execution[B]:
        if self._tg is None:
            raise RuntimeError("use the stream as `async with ex.stream(input) as events:`")
        while True:
            if self._lines:
                return self._lines.popleft()
            if self._chunks:
                self._split(*self._chunks.popleft())
                continue
            if self._done:
                if self._partial and not self._ended:  # a last line without its newline
                    line = bytes(self._partial)
                    self._partial.clear()
                    self._emit(self._partial_time, line)
                    continue
                if self._finished:
                    raise StopAsyncIteration
                self._finished = True
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                assert self._result is not None
                return self._result
            await self._wake.wait()
            self._wake = anyio.Event()

    async def __aenter__(self) -> ExecutionStream[B]:
        if self._tg is not None:
            raise RuntimeError("an ExecutionStream can be entered once")
        self._t0 = _perf()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        if not self._done:
            tg.cancel_scope.cancel()  # left early: the call goes, with its container
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The call's task raises nothing but cancellation (its error is the consumer's), so
            # a group holds what the block raised: let that propagate as it was.
            inner: BaseException = group
            while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
                inner = inner.exceptions[0]
            if inner is exc:
                return None
            raise inner from None
