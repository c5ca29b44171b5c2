"""A container's life: launch (create, attach, start), kill, discard; admission; background.

:func:`launch` is the only way a container is made and :func:`kill` the only way one is
removed on a failure path; both clean up after themselves whatever happens (shielded and
bounded, see :func:`executor.engine.cleanup`). :class:`Admission` caps container starts in
flight per engine and queues the rest in order; :class:`Background` is the task that owns the
executor's background work (removals, refills, health checks) so that ``aclose()`` may run in
any task.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import EngineUnavailable, ExecutorError
from ..engine import CLEANUP_TIMEOUT, cleanup, protect, shielded

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

    from anyio.abc import TaskGroup

    from ..engine import Attachment, Engine

__all__ = ["Admission", "Background", "Container", "kill", "launch"]

_perf = time.perf_counter


@dataclass(slots=True)
class Container:
    """A created, attached and started container, ready for a request."""

    id: str
    engine: Engine
    attachment: Attachment
    started_at: float = field(default_factory=time.monotonic)
    uses: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    #: Fork mode: the runner still owes a ready line (it is cleaning up after a call).
    owes_ready: bool = False
    #: Stdout that arrived after a response, in the same frame (the start of a ready line).
    rest: bytes = b""
    #: Fork mode: how long the runner may hold the next request before its timeout starts
    #: (the last ready line's ``hold``); the host's own deadline allows for it.
    hold: float = 0.0


async def launch(engine: Engine, body: Mapping[str, Any]) -> Container:
    """Create, attach and start a container; on any failure remove what was made."""
    t0 = _perf()
    # Protected: a create cancelled in flight may still happen at the engine, and without its
    # id nothing could remove the container. Bounded, so a hung engine cannot hold us forever.
    container_id = await protect(engine.create, body)
    if container_id is None:
        raise EngineUnavailable(
            f"the engine did not create the container within {CLEANUP_TIMEOUT:g} s.",
            engine=engine.name,
        )
    try:
        t1 = _perf()
        attachment = await engine.attach(container_id)
        t2 = _perf()
        try:
            await engine.start(container_id)
        except BaseException:
            with shielded():
                await attachment.close()
            raise
        t3 = _perf()
    except BaseException:
        await cleanup(engine.remove, container_id)
        raise
    return Container(
        container_id,
        engine,
        attachment,
        timings={"create": t1 - t0, "attach": t2 - t1, "start": t3 - t2},
    )


async def kill(container: Container) -> bool:
    """Drop the attach and remove the container now, shielded and bounded; never raises."""
    with shielded():
        await container.attachment.close()
    return await cleanup(container.engine.remove, container.id)


class Admission:
    """At most ``limit`` container starts in flight on one engine; the rest wait in order.

    Waiting holds no engine request. The limit is resolved on first use when not given: the
    engine's CPU count (starting more containers at once than the engine has CPUs only makes
    every start slower; see ``bench/load.py``).
    """

    def __init__(self, engine: Engine, limit: int | None = None) -> None:
        self._engine = engine
        self._limit = limit
        self._semaphore: anyio.Semaphore | None = None
        self.waiting = 0

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def limit(self) -> int | None:
        """The limit in force (None until resolved)."""
        return self._limit

    async def _resolve(self) -> anyio.Semaphore:
        if self._semaphore is None:
            if self._limit is None:
                try:
                    with anyio.fail_after(5):
                        cpus = (await self._engine.info()).cpus
                except (ExecutorError, TimeoutError):
                    cpus = os.cpu_count() or 2
                self._limit = max(1, cpus)
            if self._semaphore is None:
                self._semaphore = anyio.Semaphore(self._limit, fast_acquire=True)
        return self._semaphore

    async def launch(self, body: Mapping[str, Any]) -> Container:
        """:func:`launch` once a start slot is free (FIFO)."""
        semaphore = await self._resolve()
        self.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            return await launch(self._engine, body)
        finally:
            semaphore.release()


class Background:
    """The task that owns an executor's background work, and a task group inside it.

    A task of its own, not a task group entered by the caller: ``aclose()`` may then run in
    any task (pytest-asyncio runs a fixture's set-up and tear-down in different tasks).
    Without a running supervisor, :meth:`run` awaits the work inline instead.
    """

    def __init__(self) -> None:
        self._tg: TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = anyio.Event()
        self.closed = False

    @property
    def running(self) -> bool:
        return self._tg is not None

    async def start(self, *first: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Start the supervisor (once), with long-running ``first`` tasks inside it."""
        if self._task is not None or self.closed:
            return
        started = anyio.Event()

        async def supervise() -> None:
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    for fn in first:
                        tg.start_soon(fn)
                    started.set()
                    await self._closing.wait()
            finally:
                self._tg = None
                started.set()

        self._task = asyncio.get_running_loop().create_task(supervise())
        await started.wait()

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> bool:
        """Run ``fn(*args)`` in the background; False when no supervisor runs."""
        if self._tg is None:
            return False
        self._tg.start_soon(fn, *args)
        return True

    async def run(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the background when possible, else now."""
        if not self.spawn(fn, *args):
            await fn(*args)

    @property
    def closing(self) -> anyio.Event:
        """Set once :meth:`aclose` began."""
        return self._closing

    async def aclose(self) -> None:
        """Stop: wait (shielded) for the work still running, re-raise what it raised."""
        self.closed = True
        self._closing.set()
        task, self._task = self._task, None
        if task is None:
            return
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
