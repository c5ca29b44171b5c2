"""Where a call's container comes from, behind one interface: :class:`Source`.

* :class:`Fresh`: a new container per call (created, attached, started under admission
  control), removed in the background after its one call.
* :class:`Pool` (``mode="pool"``): single-use containers started ahead of calls; each still
  serves one call, a replacement starts once the call has its answer.
* :class:`Workers` (``mode="reuse"``): containers in the runner's serve mode, each serving up
  to ``max_uses`` calls, one at a time, and coming back after each; ``size`` caps them.
* :class:`ForkWorkers` (``mode="fork"``): workers whose runner runs each call in a fresh
  process and wipes the container between calls; a worker is leased only after its runner's
  ready line says the wipe is done.

A pool receives what it needs (engine, create body, admission, a place for background work)
and never sees the executor. A container that died while idle is noticed and replaced, never
handed out; a call that times out, is cancelled or breaks the protocol costs its own
container only (in fork mode a timed-out call's container is kept once its runner reports
the timeout and the wipe).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._errors import ExecutorClosed, ExecutorError, ImageNotFound, ProtocolError
from .._observe import refill_failed, refilled, replaced
from ..engine import cleanup, shielded
from .exchange import await_ready, next_line
from .lifecycle import kill

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .lifecycle import Admission, Background, Container

__all__ = ["ForkWorkers", "Fresh", "Pool", "Source", "Workers", "make_source"]

#: Pause after a failed background launch before trying again.
_RETRY_DELAY = 1.0
#: Event-loop turns a lease gives an idle container's unread bytes (an end of stream takes
#: one or two) before it uses the container anyway.
_UNREAD_TURNS = 4
#: Bound on a fork-mode runner's wipe between calls (the runner itself gives up after 2 s).
_READY_TIMEOUT = 10.0
#: Bound on a fork-mode container's start-up (its runner imports the module first).
_FIRST_READY_TIMEOUT = 30.0
#: Bound on waiting, after a fork-mode call timed out, for the runner's own timeout answer.
_DRAIN_TIMEOUT = 5.0

Body = dict[str, Any]
_UNCLEAN = "its fork-mode runner did not report ready after its last call"
_UNRECOVERED = "its fork-mode runner did not recover from a timed-out call"


class Source(ABC):
    """Gives a call a started container and takes it back afterwards."""

    #: Half-close stdin after the request (single-use containers) or keep it open (workers).
    close_stdin: bool = True

    def __init__(self, admission: Admission, background: Background) -> None:
        self.admission = admission
        self.background = background
        #: Calls waiting for a container right now.
        self.waiting = 0

    @abstractmethod
    async def lease(self, body: Body) -> Container:
        """A started container for one call (raises EngineUnavailable, ExecutorClosed...)."""

    @abstractmethod
    async def release(self, container: Container, *, healthy: bool) -> None:
        """Take back a container whose call completed (``healthy``: it may serve again)."""

    async def discard(self, container: Container) -> None:
        """Kill a container now (timeout, cancellation, broken protocol): shielded."""
        await kill(container)

    async def timed_out(self, container: Container) -> None:
        """The call's own deadline passed during its exchange."""
        await self.discard(container)

    def image_changed(self) -> None:  # noqa: B027 - optional: fresh keeps nothing
        """The image was prepared again: a failure to start the old one no longer holds."""

    async def fill(self, body: Body) -> None:  # noqa: B027 - optional: fresh keeps nothing
        """Start what the source keeps ready (``prewarm``); nothing for fresh containers."""

    async def aclose(self) -> None:  # noqa: B027 - optional: fresh holds nothing
        """Stop and remove what the source holds."""

    @property
    def idle(self) -> int:
        """Containers started and waiting for a call."""
        return 0

    @property
    def queued(self) -> bool:
        """Whether the runner should hear that another call waits (fork mode only)."""
        return False

    def _remove_later(self, container: Container) -> Awaitable[None]:
        return self.background.run(_remove_used, container)


async def _remove_used(container: Container) -> None:
    with shielded():
        await container.attachment.close()
    await cleanup(container.engine.remove, container.id)


class Fresh(Source):
    """A fresh container per call."""

    async def lease(self, body: Body) -> Container:
        if self.background.closed:
            raise ExecutorClosed()
        self.waiting += 1
        try:
            return await self.admission.launch(body)
        finally:
            self.waiting -= 1

    async def release(self, container: Container, *, healthy: bool) -> None:
        await self._remove_later(container)


class Pool(Source):
    """Single-use containers of one engine started ahead of calls (``mode="pool"``), and
    the task that keeps ``size`` of them idle. The base of the worker sources."""

    mode = "pool"

    def __init__(
        self,
        admission: Admission,
        background: Background,
        *,
        size: int,
        max_idle: float | None,
        on_empty: str,
        body: Callable[[], Awaitable[Body]],
        max_uses: int = 1,
    ) -> None:
        super().__init__(admission, background)
        self.size = size
        self.max_uses = max_uses
        self.max_idle = max_idle
        self.on_empty = on_empty
        self._body = body
        self._idle: deque[tuple[float, Container]] = deque()
        self._starting = 0
        self._busy = 0  # reusable workers serving a call (they come back)
        #: Calls waiting for a container, first come first served.
        self._waiters: deque[anyio.Event] = deque()
        self._wake = anyio.Event()
        self._error: ExecutorError | None = None
        self._closed = False
        self._refiller = False
        #: Counters for tests and benchmarks.
        self.launched = 0
        self.replaced_dead = 0
        self.recycled_idle = 0
        self.recycled_used = 0

    # -- inspection --------------------------------------------------------------------------

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def starting(self) -> int:
        """Containers being launched in the background."""
        return self._starting

    @property
    def busy(self) -> int:
        """Reusable workers serving a call right now."""
        return self._busy

    def idle_ids(self) -> list[str]:
        """Ids of the idle containers (oldest first)."""
        return [c.id for _, c in self._idle]

    def __repr__(self) -> str:
        kind = "single-use" if self.mode == "pool" else self.mode
        return (
            f"<Pool {kind} size={self.size} idle={self.idle} starting={self._starting} "
            f"busy={self._busy} waiting={self.waiting}>"
        )

    # -- filling -----------------------------------------------------------------------------

    def _ensure_refiller(self) -> None:
        if not self._refiller and not self._closed and self.background.spawn(self._refill_loop):
            self._refiller = True

    def _kick(self) -> None:
        self._ensure_refiller()
        self._wake.set()

    def _notify(self, *, everyone: bool = False) -> None:
        """Wake the first waiting call (a container is free), or all of them (the pool's state
        changed: an error, close). Waking one at a time keeps the order and spares a crowd
        of waiters a pointless wake-up each."""
        if everyone:
            for event in self._waiters:
                event.set()
            self._waiters.clear()
        elif self._waiters:
            self._waiters.popleft().set()

    async def fill(self, body: Body) -> None:
        """Start containers until ``size`` are idle, and wait for them (prewarm)."""
        if not await self._launch_missing(body):
            return
        if self._error is not None and not self._idle:
            raise self._error
        self._ensure_refiller()

    async def _launch_missing(self, body: Body) -> bool:
        """Launch, concurrently, what the pool lacks and wait; False if it lacked nothing."""
        missing = self._missing()
        if missing <= 0:
            return False
        async with anyio.create_task_group() as tg:
            for _ in range(missing):
                tg.start_soon(self._launch_one, body)
        return True

    async def _start(self, body: Body) -> Container:
        """Launch one container (fork mode: and wait for its runner's first ready line)."""
        container = await self.admission.launch(body)
        self.launched += 1
        return container

    async def _launch_one(self, body: Body) -> None:
        self._starting += 1
        try:
            container = await self._start(body)
        except ExecutorError as exc:
            self._failed(exc)
            return
        finally:
            self._starting -= 1
        if self._closed:
            await kill(container)
            return
        if self._error is not None:
            refilled(self.admission.engine.name)
        self._error = None
        self._idle.append((time.monotonic(), container))
        self._notify()

    def _failed(self, error: ExecutorError) -> None:
        """The pool cannot get a container (image, engine): log it once, fail the waiters."""
        refill_failed(self.admission.engine.name, error, first=self._error is None)
        self._error = error
        self._notify(everyone=True)

    def image_changed(self) -> None:
        if isinstance(self._error, ImageNotFound):
            self._error = None
            self._kick()

    async def _refill_loop(self) -> None:
        """Keep ``size`` containers idle or starting; recycle dead and stale ones."""
        period = min(self.max_idle / 2, 5.0) if self.max_idle else 5.0
        while not self._closed:
            try:
                body = await self._body()  # anew each round: the image may be prepared again
            except ExecutorError as exc:
                self._failed(exc)
                await anyio.sleep(_RETRY_DELAY)
                continue
            self._sweep()
            if await self._launch_missing(body):
                if self._error is not None:
                    await anyio.sleep(_RETRY_DELAY)
                continue
            with anyio.move_on_after(period):
                await self._wake.wait()
            self._wake = anyio.Event()

    def _missing(self) -> int:
        """How many containers to launch to have ``size`` idle or starting."""
        return self.size - len(self._idle) - self._starting

    def _full(self) -> bool:
        """No container may be started for a call now (workers: ``size`` is a cap)."""
        return False

    async def _ready(self, container: Container) -> bool:
        """Whether an idle container may serve now (fork: waits for its wipe); else False,
        and the container was replaced."""
        return True

    def _sweep(self) -> None:
        """Drop idle containers that died or sat idle longer than ``max_idle``."""
        now = time.monotonic()
        keep: deque[tuple[float, Container]] = deque()
        for since, container in self._idle:
            if not container.attachment.alive():
                self.replaced_dead += 1
                replaced(container.engine.name, container.id, "it died while idle")
                self.background.spawn(kill, container)
            elif self.max_idle is not None and now - since > self.max_idle:
                self.recycled_idle += 1
                self.background.spawn(kill, container)
            else:
                keep.append((since, container))
        self._idle = keep

    # -- calls -------------------------------------------------------------------------------

    async def lease(self, body: Body) -> Container:
        """An idle, live (and, in fork mode, clean) container; else start one or wait."""
        self.waiting += 1
        try:
            return await self._take(body)
        finally:
            self.waiting -= 1

    async def _take(self, body: Body) -> Container:
        turns = 0
        while True:
            while self._idle:
                if turns < _UNREAD_TURNS and self._idle[0][1].attachment.unread():
                    # Bytes came while it sat idle, maybe its end of stream (removed from
                    # outside a moment ago): turns of the event loop read them, so the
                    # container is seen dead instead of written to. Bounded per lease. (A fork
                    # worker's ready line is such bytes too, unless it came with the answer.)
                    turns += 1
                    await anyio.lowlevel.checkpoint()
                    continue
                _, container = self._idle.popleft()
                if not container.attachment.alive():
                    self.replaced_dead += 1
                    replaced(container.engine.name, container.id, "it died while idle")
                    await kill(container)
                    continue
                # Busy from here: the refiller must not replace it while its wipe finishes.
                self._busy += 1
                if not await self._ready(container):
                    continue
                container.timings.clear()  # its launch was not this call's: no create/start
                # The replacement (single-use) starts once this call has its reply (see
                # release()): launching now would compete with this exchange at the engine.
                return container
            if self._closed or self.background.closed:
                raise ExecutorClosed()
            if not self._full() and (self.on_empty == "start" or not self.background.running):
                # Counted as starting, so the refiller does not launch a second one for it.
                self._starting += 1
                try:
                    container = await self._start(body)
                finally:
                    self._starting -= 1
                self._busy += 1
                self._ensure_refiller()
                return container
            if self._error is not None and not self._starting and not self._busy:
                raise self._error
            event = anyio.Event()
            self._waiters.append(event)
            try:
                self._kick()
                await event.wait()
            except BaseException:
                if event.is_set():
                    self._notify()  # woken, then cancelled: pass the turn on
                else:
                    self._waiters.remove(event)
                raise

    async def release(self, container: Container, *, healthy: bool) -> None:
        self._busy -= 1
        container.uses += 1
        await self._remove_later(container)
        self._kick()  # the replacement starts now, not while the call talked to the engine

    def resize(self, size: int) -> None:
        """Keep ``size`` containers idle from now on; idle ones beyond it are removed."""
        self.size = size
        while len(self._idle) > size:
            _, container = self._idle.pop()
            self.recycled_idle += 1
            if not self.background.spawn(kill, container):
                self._idle.append((time.monotonic(), container))  # no background: kept
                break
        self._kick()

    def detach(self, container: Container) -> None:
        """A leased container the caller keeps for good (a session owns it from now on and
        removes it itself): off the pool's books, and its replacement starts now."""
        self._busy -= 1
        self._kick()

    async def discard(self, container: Container) -> None:
        self._busy -= 1
        await kill(container)
        self._notify()  # a worker's place is free: a waiting call may start one
        self._kick()

    async def aclose(self) -> None:
        """Stop refilling and remove every idle container (shielded)."""
        self._closed = True
        self._wake.set()
        self._notify(everyone=True)
        idle, self._idle = self._idle, deque()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for _, container in idle:
                    tg.start_soon(kill, container)


class Workers(Pool):
    """Containers in the runner's serve mode (``mode="reuse"``): one process answers up to
    ``max_uses`` calls, one at a time. ``size`` caps the workers (0: no cap, one per
    concurrent call); a burst of calls beyond it queues for them instead of starting a
    container each (engine thrash)."""

    mode = "reuse"
    close_stdin = False

    def _missing(self) -> int:
        """Busy workers count: they come back."""
        return super()._missing() - self._busy

    def _full(self) -> bool:
        return bool(self.size) and self._busy + self._starting >= self.size

    def _returned(self, container: Container) -> None:
        """A worker goes back to the idle list after a call."""

    async def release(self, container: Container, *, healthy: bool) -> None:
        self._busy -= 1
        container.uses += 1
        if healthy and not self._closed and container.uses < self.max_uses:
            self._returned(container)
            self._idle.appendleft((time.monotonic(), container))  # warmest first
            self._notify()
        else:
            if healthy:
                self.recycled_used += 1
            await self._remove_later(container)
        self._kick()


class ForkWorkers(Workers):
    """Fork-mode workers (``mode="fork"``): a fresh process per call; the runner wipes the
    container after each and says so with a ready line, awaited before the next lease. A
    timed-out call's container is kept once its runner reports the timeout and the wipe."""

    mode = "fork"

    async def _start(self, body: Body) -> Container:
        container = await super()._start(body)
        try:
            with anyio.fail_after(_FIRST_READY_TIMEOUT):
                await await_ready(container)
        except TimeoutError:
            await kill(container)
            raise ProtocolError(
                f"the container did not report ready within {_FIRST_READY_TIMEOUT:g} s: "
                "its runner may not support fork mode (runner images >= 0.2.0 do), or "
                "importing the task module takes longer"
            ) from None
        except BaseException:
            await kill(container)
            raise
        return container

    def _returned(self, container: Container) -> None:
        container.owes_ready = True

    @property
    def queued(self) -> bool:
        """A call waits for a container: the runner then sends the answer after its cleanup,
        with its ready line in the same write (one frame less for the engine and for us; the
        waiting call could not have had this container before the ready line anyway)."""
        return self.waiting > 0

    async def _ready(self, container: Container) -> bool:
        return not container.owes_ready or await self._cleaned(container)

    async def _cleaned(self, container: Container) -> bool:
        """Wait for a fork-mode runner's ready line after its last call; False: replaced."""
        try:
            with anyio.fail_after(_READY_TIMEOUT):
                await await_ready(container)
        except (ExecutorError, TimeoutError):
            self._busy -= 1
            self.replaced_dead += 1
            replaced(container.engine.name, container.id, _UNCLEAN, warning=True)
            await kill(container)
            self._kick()
            return False
        except BaseException:
            # The caller was cancelled while the wipe ran: the container is still good.
            self._busy -= 1
            self._idle.appendleft((time.monotonic(), container))
            self._notify()
            raise
        return True

    async def timed_out(self, container: Container) -> None:
        if self._closed or not self.background.spawn(self._drain, container):
            await self.discard(container)

    async def _drain(self, container: Container) -> None:
        """After a fork-mode call timed out here: wait for the runner's own answer and wipe.

        The runner enforces the same timeout on the task's process, so its ``TIMEOUT``
        answer follows within milliseconds; the container then serves on. Bounded.
        """
        try:
            with anyio.fail_after(_DRAIN_TIMEOUT):
                await _skip_response(container)
                await await_ready(container)
        except (ExecutorError, TimeoutError):
            replaced(container.engine.name, container.id, _UNRECOVERED, warning=True)
            await self.discard(container)
            return
        self._busy -= 1
        container.uses += 1
        if not self._closed and container.uses < self.max_uses:
            self._idle.appendleft((time.monotonic(), container))
            self._notify()
        else:
            await self._remove_later(container)
        self._kick()


async def _skip_response(container: Container) -> None:
    """Read (and drop) the response line the interrupted call was waiting for."""
    if await next_line(container) is None:
        raise ProtocolError("the container ended before answering the timed-out call")


def make_source(
    mode: str,
    admission: Admission,
    background: Background,
    *,
    size: int,
    max_uses: int,
    max_idle: float | None,
    on_empty: str,
    body: Callable[[], Awaitable[Body]],
) -> Source:
    """The source of ``mode`` (``ContainerConfig.mode``)."""
    if mode == "fresh":
        return Fresh(admission, background)
    kind = {"pool": Pool, "reuse": Workers, "fork": ForkWorkers}[mode]
    return kind(
        admission,
        background,
        size=size,
        max_uses=max_uses,
        max_idle=max_idle,
        on_empty=on_empty,
        body=body,
    )
