"""Warm pool and reusable workers for :class:`ContainerExecutor`.

Single-use pool (``pool_size=N``): up to N containers are kept created, attached and started,
each blocked on its stdin with the runner's start-up done. A call takes one, writes its
request, reads the response as soon as it is complete, and hands the container to background
removal; a replacement starts in the background. Every container still serves one call.

Reusable workers (``reuse=True``): containers run the runner's serve mode and answer up to
``max_uses`` newline-delimited requests each, one at a time. State can leak between calls.

Refills and removals run in the executor's task group. A container that died while idle is
noticed (its attach stream ended) and replaced, never handed out. A call that times out, is
cancelled or breaks the protocol kills its own container only.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from ._container import Container, Outgoing, exchange, launch
from ._engines import NotDelivered
from ._errors import EngineUnavailable, ExecutorError, ProtocolError

if TYPE_CHECKING:
    from ._base import Execution
    from ._container import ContainerExecutor
    from ._engines import EngineSlot

_perf = time.perf_counter
#: Pause after a failed background launch before trying again.
_RETRY_DELAY = 1.0


class Pool:
    """The idle containers of one executor, and the task that keeps them topped up."""

    def __init__(self, executor: ContainerExecutor[Any, Any], slot: EngineSlot) -> None:
        self._ex = executor
        self._slot = slot
        config = executor.config
        self.size = config.pool_size
        self.reuse = config.reuse
        self.max_uses = config.max_uses if config.reuse else 1
        self.max_idle = config.max_idle
        self.on_empty = config.on_empty
        self._idle: deque[tuple[float, Container]] = deque()
        self._starting = 0
        self._busy = 0  # reusable workers serving a call (they come back)
        self._changed = anyio.Event()
        self._wake = anyio.Event()
        self._error: ExecutorError | None = None
        self._closed = False
        self._refiller_started = False
        #: Counters for tests and benchmarks.
        self.launched = 0
        self.replaced_dead = 0
        self.recycled_idle = 0

    # -- inspection ----------------------------------------------------------------------

    @property
    def idle(self) -> int:
        """Containers started and waiting for a call."""
        return len(self._idle)

    @property
    def starting(self) -> int:
        """Containers being launched in the background."""
        return self._starting

    def idle_ids(self) -> list[str]:
        """Ids of the idle containers (oldest first)."""
        return [c.id for _, c in self._idle]

    # -- filling -------------------------------------------------------------------------

    def _ensure_refiller(self) -> None:
        if self._refiller_started or self._closed:
            return
        tg = self._ex._tg
        if tg is None:
            return
        self._refiller_started = True
        tg.start_soon(self._refill_loop)

    def _kick(self) -> None:
        self._ensure_refiller()
        self._wake.set()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def fill(self) -> None:
        """Start containers until ``pool_size`` are idle, and wait for them (prewarm)."""
        body = await self._ex._ready(self._slot)
        if not await self._launch_missing(body):
            return
        if self._error is not None and not self._idle:
            raise self._error
        self._ensure_refiller()

    async def _launch_missing(self, body: dict[str, Any]) -> bool:
        """Launch, concurrently, what the pool lacks and wait; False if it lacked nothing."""
        missing = self._missing()
        if missing <= 0:
            return False
        async with anyio.create_task_group() as tg:
            for _ in range(missing):
                tg.start_soon(self._launch_one, body)
        return True

    async def _launch_one(self, body: dict[str, Any]) -> None:
        self._starting += 1
        try:
            container = await launch(self._slot.engine, body)
        except ExecutorError as exc:
            self._error = exc
            return
        finally:
            self._starting -= 1
            self._notify()
        self.launched += 1
        if self._closed:
            await self._ex.kill(container)
            return
        self._error = None
        self._idle.append((time.monotonic(), container))
        self._notify()

    async def _refill_loop(self) -> None:
        """Keep ``pool_size`` containers idle or starting; recycle dead and stale ones."""
        body = await self._ex._ready(self._slot)
        period = min(self.max_idle / 2, 5.0) if self.max_idle else 5.0
        while not self._closed:
            self._sweep()
            if await self._launch_missing(body):
                if self._error is not None:
                    await anyio.sleep(_RETRY_DELAY)
                continue
            with anyio.move_on_after(period):
                await self._wake.wait()
            self._wake = anyio.Event()

    def _missing(self) -> int:
        """How many containers to launch: busy reusable workers count, they come back."""
        return self.size - len(self._idle) - self._starting - (self._busy if self.reuse else 0)

    def _sweep(self) -> None:
        """Drop idle containers that died or sat idle longer than ``max_idle``."""
        now = time.monotonic()
        keep: deque[tuple[float, Container]] = deque()
        for since, container in self._idle:
            if not container.attachment.alive():
                self.replaced_dead += 1
                self._drop(container)
            elif self.max_idle is not None and now - since > self.max_idle:
                self.recycled_idle += 1
                self._drop(container)
            else:
                keep.append((since, container))
        self._idle = keep

    def _drop(self, container: Container) -> None:
        tg = self._ex._tg
        if tg is not None:
            tg.start_soon(self._ex.kill, container)

    # -- calls ---------------------------------------------------------------------------

    async def _take(self) -> Container:
        """An idle, live container; else a fresh one (``on_empty="start"``) or wait for one."""
        while True:
            while self._idle:
                _, container = self._idle.popleft()
                if container.attachment.alive():
                    # The replacement starts once this call has its reply (see call()):
                    # launching now would compete with this exchange at the engine.
                    return container
                self.replaced_dead += 1
                await self._ex.kill(container)
            if self._closed:
                raise ExecutorError("the executor is closed; create a new one", code="CLOSED")
            if self.on_empty == "start" or self._ex._tg is None:
                self._kick()
                body = await self._ex._ready(self._slot)
                self.launched += 1
                return await launch(self._slot.engine, body)
            if self._error is not None and not self._starting:
                raise self._error
            changed = self._changed
            self._kick()
            await changed.wait()

    def _give_back(self, container: Container) -> bool:
        """Return a reusable worker to the idle queue; False if it must go."""
        if self._closed or container.uses >= self.max_uses:
            return False
        self._idle.appendleft((time.monotonic(), container))  # warmest first
        self._notify()
        return True

    async def call(self, payload: Outgoing, t0: float) -> Execution[Any]:
        """Run one request on a pooled or reused container."""
        try:
            container = await self._take()
        except EngineUnavailable as exc:
            raise NotDelivered(exc) from exc  # nothing was sent: another engine may take it
        self._busy += 1
        try:
            return await self._serve(container, payload, t0)
        finally:
            self._busy -= 1
            self._kick()  # the replacement starts now, not while this call talks to the engine

    async def _serve(self, container: Container, payload: Outgoing, t0: float) -> Execution[Any]:
        ex = self._ex
        if container.uses:
            container.timings = {}  # a reused worker's launch was paid by an earlier call
        container.uses += 1
        try:
            reply = await exchange(
                container,
                payload,
                max_output_bytes=ex.config.max_output_bytes,
                max_log_bytes=ex.config.max_log_bytes,
                close_stdin=not self.reuse,
            )
        except BaseException:
            await ex.kill(container)  # timeout, cancellation, oversize output: this one only
            raise
        healthy = False
        try:
            result = await ex.interpret(container, reply, t0, _perf())
            healthy = not reply.ended
            return result
        except ProtocolError:
            raise
        except ExecutorError:
            # The runner answered with an error: a reusable worker survives that.
            healthy = not reply.ended
            raise
        finally:
            if not (self.reuse and healthy and self._give_back(container)):
                await ex.discard(container)

    async def aclose(self) -> None:
        """Stop refilling and remove every idle container (shielded)."""
        self._closed = True
        self._wake.set()
        self._notify()
        idle, self._idle = self._idle, deque()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for _, container in idle:
                    tg.start_soon(self._ex.kill, container)


__all__ = ["Pool"]
