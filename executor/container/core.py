"""One engine's share of a :class:`ContainerExecutor`: its image, its containers, its calls.

An :class:`EngineCore` knows exactly one engine. It prepares the create body once
(:class:`Readiness`), leases containers from its :class:`Source` under admission control,
sends one encoded request per call and interprets the answer, with the call's two clocks:
``start_timeout`` while getting a container (:class:`StartTimeout`, never delivered) and
``timeout`` from delivery to answer (:class:`ExecutionTimeout`). Several engines are several
cores behind a :class:`Router`.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import (
    EngineUnavailable,
    ExecutionTimeout,
    ExecutorClosed,
    ExecutorError,
    ImageNotFound,
    StartTimeout,
    WorkerLost,
)
from .._observe import CONTAINER, DEBUG, call_done, call_timed_out, engine_down, engine_up, killed
from ..engine import INSTANCE_LABEL, cleanup, shielded
from .exchange import QUEUED_SLACK, conclude, exchange
from .images import Readiness
from .lifecycle import Admission
from .sources import ForkWorkers, Pool, Source, make_source

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .._base import Execution
    from .._stream import Tap
    from ..engine import Engine
    from .config import ContainerConfig
    from .exchange import CallSpec, Outgoing
    from .lifecycle import Background

__all__ = ["EngineCore", "NotDelivered"]

_perf = time.perf_counter
#: How long one health ping may take before the engine counts as down.
PING_TIMEOUT = 5.0
#: Bound on a sweep of an engine's leftovers.
SWEEP_TIMEOUT = 15.0


class NotDelivered(Exception):
    """The call failed before its request reached a container (safe to retry elsewhere)."""

    def __init__(self, error: EngineUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


class EngineCore:
    """Calls on one engine."""

    def __init__(
        self,
        engine: Engine,
        config: ContainerConfig,
        *,
        labels: Mapping[str, str],
        files: Mapping[str, bytes],
        background: Background,
        spec: CallSpec,
        peers: Callable[[], Sequence[Engine]],
    ) -> None:
        self.engine = engine
        self.capacity = float(getattr(engine, "capacity", 1.0) or 1.0)
        self.readiness = Readiness(engine, config, labels, files, peers)
        self.admission = Admission(engine, config.max_starting)
        self.instance = labels[INSTANCE_LABEL]
        self.spec = spec
        self.start_timeout = config.start_timeout
        self.source: Source = make_source(
            config.mode,
            self.admission,
            background,
            size=config.containers or 0,
            max_uses=config.uses_per_container,
            max_idle=config.max_idle,
            on_empty=config.on_empty,
            body=self.readiness.get,
        )
        self.in_flight = 0
        self.calls = 0
        self.down_since: float | None = None
        self.last_error: ExecutorError | None = None

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def pool(self) -> Pool | None:
        """The warm pool or workers, when the mode has one."""
        return self.source if isinstance(self.source, Pool) else None

    # -- one call ------------------------------------------------------------------------------

    async def call(
        self, payload: Outgoing, t0: float, start_by: float, tap: Tap | None = None
    ) -> Execution[Any]:
        """Run one encoded request here. Raises :class:`NotDelivered` when it never left.

        ``tap`` (a streamed call) receives the task's stderr as it arrives."""
        source = self.source
        if self.readiness.building:
            # The requirements image is made once, bounded by build_timeout: the start clock
            # (start_timeout) runs from when it is there.
            began = anyio.current_time()
            try:
                await self.readiness.dependencies()
            except EngineUnavailable as exc:
                raise NotDelivered(exc) from exc
            start_by += anyio.current_time() - began
        phase = "the image to be ready on the engine"
        with anyio.CancelScope(deadline=start_by) as start_scope:
            try:
                body = await self.readiness.get()
                phase = (
                    "a pooled container to become free"
                    if isinstance(source, Pool)
                    else "the engine to create and start a container"
                )
                try:
                    container = await source.lease(body)
                except ImageNotFound:
                    # Gone since it was checked (removed by hand, a derived image cleared):
                    # check, copy, build or derive it again, as the first call did; once.
                    self.readiness.stale(body)
                    body = await self.readiness.get()
                    source.image_changed()
                    container = await source.lease(body)
            except EngineUnavailable as exc:
                raise NotDelivered(exc) from exc
        if start_scope.cancelled_caught:
            raise StartTimeout(self.start_timeout, waiting=source.waiting + 1, phase=phase)
        spec = self.spec
        timeout = spec.timeout
        # A fork-mode runner may hold the request while its spare loads, outside the timeout
        # it enforces itself (the ready line's ``hold``), and answers a queued call after its
        # cleanup (QUEUED_SLACK): this deadline is only the backstop.
        queued = source.queued
        slack = container.hold + (QUEUED_SLACK if queued else 0.0)
        deadline = math.inf if timeout is None else anyio.current_time() + timeout + slack
        try:
            with anyio.CancelScope(deadline=deadline) as task_scope:
                reply = await exchange(
                    container,
                    payload,
                    spec,
                    close_stdin=source.close_stdin,
                    tap=tap,
                    queued=queued,
                )
        except BaseException as exc:
            # Cancellation, oversize output, engine failure: this container goes, now.
            killed(self.name, container.id, exc)
            await source.discard(container)
            raise
        if task_scope.cancelled_caught:
            call_timed_out(self.name, container.id, timeout, isinstance(source, ForkWorkers))
            await source.timed_out(container)
            raise ExecutionTimeout(timeout or 0.0, what="the container call")
        code = "CANCELLED"
        try:
            result = await conclude(container, reply, t0, _perf(), spec)
            code = "OK"
            return result
        except WorkerLost as exc:
            if not self.readiness.closed:
                code = exc.code
                raise
            # aclose() removed the containers still running calls: say so, not "by someone".
            code = "CLOSED"
            raise ExecutorClosed("the executor was closed while the call ran") from exc
        except ExecutorError as exc:
            code = exc.code
            raise
        finally:
            # A runner that answered (even with an error) serves on; garbled stdout or an
            # ended stream means this container goes.
            with shielded():
                await source.release(container, healthy=reply.answered and not reply.ended)
            if CONTAINER.isEnabledFor(DEBUG):
                call_done(self.name, container.id, code, _perf() - t0)

    # -- health --------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.down_since is None

    def mark_down(self, error: ExecutorError) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            engine_down(self.name, error)
        self.last_error = error

    def mark_up(self) -> None:
        if self.down_since is not None:
            engine_up(self.name, time.monotonic() - self.down_since)
        self.down_since = None
        self.last_error = None

    async def ping(self) -> bool:
        """Ping the engine (bounded); update and return whether it is up."""
        with anyio.move_on_after(PING_TIMEOUT):
            try:
                await self.engine.ping()
            except ExecutorError as exc:
                self.mark_down(exc)
                return False
            self.mark_up()
            return True
        self.mark_down(
            EngineUnavailable(f"the engine at {self.name} did not answer a ping.", engine=self.name)
        )
        return False

    async def sweep(self, *, stopped_only: bool) -> list[str]:
        """Remove this executor's containers that an engine failure kept us from removing.

        Run when an engine comes back (only stopped ones: running ones may serve calls) and
        at close (all of them: by then every call has ended). Bounded; never raises.
        Returns the ids it could not remove (the engine did not answer).
        """
        left: list[str] = []
        with anyio.move_on_after(SWEEP_TIMEOUT) as scope:
            try:
                found = await self.engine.list_managed({INSTANCE_LABEL: self.instance})
            except ExecutorError:
                return ["?"]
            for info in found:
                if stopped_only and info.get("State") in ("running", "created", "restarting"):
                    continue
                if not await cleanup(self.engine.remove, str(info["Id"])):
                    left.append(str(info["Id"]))
        if scope.cancelled_caught:
            left.append("?")
        return left

    def status(self) -> dict[str, Any]:
        """A JSON-ready view: name, up, calls in flight and served, capacity, last error."""
        pool = self.pool
        return {
            "engine": self.name,
            "up": self.up,
            "in_flight": self.in_flight,
            "calls": self.calls,
            "capacity": self.capacity,
            "idle_pooled": pool.idle if pool is not None else 0,
            "waiting": self.source.waiting,
            "max_starting": self.admission.limit,
            "last_error": self.last_error.message if self.last_error else None,
        }

    async def aclose(self) -> None:
        """Refuse new calls; remove idle pooled containers (shielded)."""
        self.readiness.close()
        await self.source.aclose()
