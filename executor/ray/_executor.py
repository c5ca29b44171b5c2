"""``RayExecutor``: the caller's side, routing chunks of inputs to one actor per node.

The caller converts and validates each input, encodes it once, and queues it. A dispatcher
task sends the queue in chunks to the least-loaded actor whose window (``max_in_flight_per_
actor``) has drained to half: calls queued together (a batch, or concurrent ``execute``
calls) travel together, so Ray's cost per actor call (about 1 ms of CPU here) is paid per
chunk. Results come back in one reply for a quick chunk, else streamed as they finish (up to
50 ms' worth per message), and each output is decoded into ``B`` on the caller.

Failure handling (see :mod:`executor.ray._worker` for the two-call chunk protocol):

* a chunk whose ``accept`` failed never ran: its calls go back to the front of the queue and
  are retried once on another actor; a second failure is :class:`EngineUnavailable`;
* a call of an accepted chunk whose result never came (the actor or its node died) fails with
  :class:`WorkerLost`: it may have run, and is never sent again;
* an error that says ``delivered=False`` (e.g. :class:`StartTimeout`) is retried once like an
  unaccepted call; an :class:`EngineUnavailable` result takes the actor out of routing until
  its engine answers a probe;
* with no actor left to route to (and none starting), queued calls fail with
  :class:`EngineUnavailable` at once rather than wait.

A supervisor loop reconciles the actors with the cluster every second: actors on dead nodes
are dropped, unreachable ones pinged, missing ones placed (one per alive node, or ``actors=N``
spread evenly, rebalanced when a node comes back).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

from .._base import Execution, Executor, ResultStream, resolve_types
from .._errors import (
    ConfigError,
    EngineUnavailable,
    ExecutorClosed,
    ExecutorError,
    WorkerLost,
)
from .._schema import Codec
from ._worker import NodeWorker, Result

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import TaskGroup

    from .. import ContainerConfig
    from .._base import Inputs, ProgressCallback

A = TypeVar("A")
B = TypeVar("B")

_perf = time.perf_counter
_json_encode = msgspec.json.Encoder().encode

#: Label on every container an actor makes: ``reap`` on actor start looks only at these.
RAY_LABEL = "executor.ray"
#: How often the supervisor reconciles actors with the cluster's nodes.
HEALTH_INTERVAL = 1.0
#: Bound on an actor's start (worker process, imports, reap, prewarm) and on a ping.
START_TIMEOUT = 120.0
PING_TIMEOUT = 5.0
#: Once one actor is up, the executor's start waits at most this long for the others.
START_SETTLE = 5.0
#: After a failed start on a node, wait this long before placing there again (doubling on
#: each failure there, up to PLACE_BACKOFF_MAX; a start that succeeds resets it).
PLACE_BACKOFF = 10.0
PLACE_BACKOFF_MAX = 300.0
#: Bound on closing one actor (its executor removes its idle containers).
CLOSE_TIMEOUT = 15.0
#: Slack over ``config.timeout`` before a silent chunk counts as lost (transport, cleanup).
STREAM_GRACE = 30.0
#: An actor unreachable this long while its node is alive is taken for dead and replaced.
DOWN_DEADLINE = 30.0
#: A chunk whose calls add up to less than this (by the actor's average call) returns its
#: results in one reply: a streamed call costs more (645 vs 580 calls/s in bench/ray.py), and
#: is worth it only when results would otherwise wait long for the chunk's slowest call.
STREAM_AFTER = 0.25
#: Dead actors stay in :attr:`RayExecutor.nodes` (``up: False``) this long.
KEEP_DEAD = 300.0

STARTING, UP, DOWN, DRAINING, DEAD = "starting", "up", "down", "draining", "dead"


def import_ray() -> Any:
    """Import ray, or raise :class:`ConfigError` naming the extra that installs it."""
    try:
        import ray
        import ray.exceptions
        import ray.util.scheduling_strategies
    except ImportError as exc:
        raise ConfigError(
            f"RayExecutor needs Ray ({exc}): install the extra, pip install 'executor[ray]'"
        ) from exc
    return ray


@dataclass(eq=False, slots=True)
class _Actor:
    """One placed actor as the caller sees it."""

    node_id: str
    window: int
    handle: Any = None
    state: str = STARTING
    actor_id: str | None = None
    engine: str | None = None
    host: str | None = None
    pid: int | None = None
    engine_up: bool = True
    in_flight: int = 0
    calls: int = 0
    chunks: int = 0
    #: Moving average of the node executor's call duration (s), to pick how results return.
    avg_call: float | None = None
    down_since: float | None = None
    died_at: float | None = None
    last_error: str | None = None
    cancels: dict[int, list[int]] = field(default_factory=dict)

    @property
    def routable(self) -> bool:
        return self.state == UP and self.engine_up

    @property
    def name(self) -> str:
        return f"{self.engine or '?'} on node {self.node_id[:12]}"

    def down(self, state: str, why: str) -> None:
        if self.state == DEAD:
            return
        self.state = state
        self.last_error = why
        if self.down_since is None:
            self.down_since = time.monotonic()
        if state == DEAD:
            self.died_at = time.monotonic()

    def report(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "actor_id": self.actor_id,
            "engine": self.engine,
            "host": self.host,
            "pid": self.pid,
            "calls": self.calls,
            "chunks": self.chunks,
            "in_flight": self.in_flight,
            "up": self.routable,
            "state": self.state if self.engine_up else f"{self.state}, engine down",
            "last_error": self.last_error,
        }


@dataclass(eq=False, slots=True)
class _Call:
    payload: bytes
    future: asyncio.Future[tuple[bytes, Any]]
    attempts: int = 0
    #: ``(actor, token, index)`` while the call is part of a chunk sent to an actor.
    where: tuple[_Actor, int, int] | None = None


class RayExecutor(Executor[A, B], Generic[A, B]):
    """Run each call in a container on a node of a Ray cluster, one actor per node.

    Each actor owns a :class:`~executor.ContainerExecutor` built from ``config`` on its node,
    using that node's engine (its ``DOCKER_HOST``, else the default socket); pool, reuse and
    fork modes work inside it as they do locally. Inputs are converted and validated here,
    before anything is sent; outputs are decoded here. ``actors=None`` places one actor per
    alive node, ``actors=N`` places N spread over the nodes. ``address=None`` uses the cluster
    ``ray.init`` already connected this process to, else whatever ``ray.init()`` finds or
    starts; ``"auto"`` or ``"ray://host:port"`` join an existing one. At most
    ``max_in_flight_per_actor`` inputs are on one actor at a time; ``chunk_size`` caps the
    inputs of one actor call (default: the window; ``1`` turns chunking off).

    Asyncio only (Ray's object references are asyncio futures). Use it as ``async with``: the
    actors are placed on entry and closed on exit. Raises :class:`ConfigError` when Ray is not
    installed (``pip install 'executor[ray]'``).
    """

    def __init__(
        self,
        config: ContainerConfig,
        *,
        actors: int | None = None,
        address: str | None = None,
        max_in_flight_per_actor: int = 32,
        chunk_size: int | None = None,
        input_type: Any = None,
        output_type: Any = None,
        _types: tuple[Any, Any] | None = None,
    ) -> None:
        self._ray = import_ray()
        from .. import ContainerConfig

        if not isinstance(config, ContainerConfig):
            raise ConfigError(f"config must be a ContainerConfig, got {type(config).__name__}")
        if config.docker is not None:
            raise ConfigError(
                "RayExecutor: ContainerConfig.docker (a client object) cannot travel to the "
                "nodes; leave it unset so each node uses its own engine, or give docker_url"
            )
        for name, value in (
            ("actors", actors),
            ("max_in_flight_per_actor", max_in_flight_per_actor),
            ("chunk_size", chunk_size),
        ):
            if value is None and name != "max_in_flight_per_actor":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"RayExecutor: {name} must be a positive integer, got {value!r}")
        if address is not None and not (isinstance(address, str) and address):
            raise ConfigError(f"RayExecutor: address must be a non-empty string, got {address!r}")
        self.config = config
        self.input_type, self.output_type = resolve_types(
            type(self), _types, input_type, output_type
        )
        self._in: Codec[A] = Codec(
            self.input_type, config.schema_in, which="in", validate=config.validate
        )
        self._out: Codec[B] = Codec(
            self.output_type, config.schema_out, which="out", validate=config.validate
        )
        # What each actor builds: the schemas resolved here (the runner sees the same request
        # as with a local executor; a file path need not exist on the nodes), no validation
        # (done here), and a label that scopes reap-on-start to containers of Ray actors.
        self._worker_config = replace(
            config,
            schema_in=self._in.schema,
            schema_out=self._out.schema,
            validate=False,
            labels={**config.labels, RAY_LABEL: "true"},
            reap_on_start=True,
        )
        self._n_actors = actors
        self._address = address
        self._window = max_in_flight_per_actor
        self._low_water = max_in_flight_per_actor // 2
        self._chunk_size = chunk_size or max_in_flight_per_actor
        self._actors: list[_Actor] = []
        self._queue: deque[_Call] = deque()
        self._tokens = itertools.count()
        self._backoff: dict[str, tuple[float, float]] = {}  # node -> (until, last delay)
        self._wake: asyncio.Event | None = None
        self._booted = asyncio.Event()
        self._tg: TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._start_lock: asyncio.Lock | None = None
        self._started = False
        self._closed = False
        self._actor_class: Any = None
        self._cluster_error: str | None = None
        self._client_mode = False

    # -- inspection ----------------------------------------------------------------------------

    @property
    def nodes(self) -> list[dict[str, Any]]:
        """Per actor: ``node_id``, ``actor_id``, ``engine``, ``host`` and ``pid`` of the actor
        process, ``calls`` finished, ``chunks`` received, ``in_flight``, ``up`` (routable),
        ``state`` and ``last_error``."""
        return [actor.report() for actor in self._actors]

    def _default_concurrency(self) -> int:
        live = sum(a.state in (STARTING, UP) for a in self._actors)
        return self._window * max(live, self._n_actors or 1)

    # -- calls ---------------------------------------------------------------------------------

    async def run(self, input: A | Any) -> Execution[B]:
        t0 = _perf()
        value = self._in.coerce(input)
        if self._in.wire is not None:  # a pydantic model: msgspec cannot encode it
            value = self._in.wire(value)
        payload = self._encode(value)
        if self._closed:
            raise ExecutorClosed()
        if not self._started:
            await self._start()
        self._check_supervisor()
        call = _Call(payload, asyncio.get_running_loop().create_future())
        self._queue.append(call)
        self._kick()
        try:
            raw, meta = await call.future
        except asyncio.CancelledError:
            self._abandon(call)
            raise
        t_reply = _perf()
        duration, timings, logs, logs_truncated, container_id, exit_code, image, engine = meta
        output = self._out.decode_json(raw)
        timings = dict(timings)
        timings["validate_out"] = _perf() - t_reply
        timings["ray"] = max(t_reply - t0 - duration, 0.0)
        return Execution(
            output=output,
            duration=_perf() - t0,
            timings=timings,
            logs=logs,
            logs_truncated=logs_truncated,
            container_id=container_id,
            exit_code=exit_code,
            image=image,
            engine=engine,
        )

    def _check_supervisor(self) -> None:
        """Raise the supervisor's failure, if it died: no call would ever be dispatched."""
        supervisor = self._supervisor
        if supervisor is None:
            raise ExecutorClosed()
        if supervisor.done():
            exc = None if supervisor.cancelled() else supervisor.exception()
            raise _unavailable(
                f"the RayExecutor's dispatcher stopped: {exc!r}; create a new executor"
            ) from exc

    def _encode(self, value: Any) -> bytes:
        try:
            return _json_encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise self._in.fail(f"cannot be encoded as JSON: {exc}") from None
        except RecursionError:
            raise self._in.fail("is nested too deeply to be encoded as JSON") from None

    async def execute_many(
        self,
        inputs: Inputs,
        *,
        concurrency: int | None = None,
        return_exceptions: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> list[B | ExecutorError]:
        """As :meth:`Executor.execute_many`; ``concurrency=None`` fills every actor's window."""
        if not self._started and not self._closed:
            await self._start()
        return await super().execute_many(
            inputs,
            concurrency=self._default_concurrency() if concurrency is None else concurrency,
            return_exceptions=return_exceptions,
            on_progress=on_progress,
        )

    def map(
        self,
        inputs: Inputs,
        *,
        concurrency: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ResultStream[B]:
        """As :meth:`Executor.map`; ``concurrency=None`` fills every actor's window (the
        actors placed so far: call it inside ``async with``)."""
        return super().map(
            inputs,
            concurrency=self._default_concurrency() if concurrency is None else concurrency,
            on_progress=on_progress,
        )

    # -- dispatch ------------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._dispatch()

    def _dispatch(self) -> None:
        """Send queued calls in chunks to actors with room; fail them if no actor is left."""
        assert self._tg is not None
        self._send_cancels()
        queue = self._queue
        while queue:
            actor = self._pick()
            if actor is None:
                break
            # Split what is queued evenly over the actors with room, so a small batch of
            # slow calls runs on every node instead of filling the first actor's window.
            with_room = sum(a.routable and a.in_flight <= self._low_water for a in self._actors)
            share = -(-len(queue) // max(with_room, 1))
            room = min(actor.window - actor.in_flight, self._chunk_size, share)
            calls: list[_Call] = []
            while queue and len(calls) < room:
                call = queue.popleft()
                if not call.future.done():
                    calls.append(call)
            if not calls:
                break
            actor.in_flight += len(calls)
            self._tg.start_soon(self._send, actor, calls)
        hope = (a.state == STARTING or a.in_flight or a.routable for a in self._actors)
        if queue and not any(hope):
            self._fail_queued(self._no_actor)

    def _pick(self) -> _Actor | None:
        """The least-loaded routable actor once its window drained to half; else a probe."""
        best: _Actor | None = None
        for actor in self._actors:
            if actor.routable and (best is None or actor.in_flight < best.in_flight):
                best = actor
        if best is not None:
            return best if best.in_flight <= self._low_water else None
        # Nothing routable: send one chunk at a time to the actor down longest (it may be
        # back); its failure fails the chunk instead of leaving the caller waiting.
        probes = [a for a in self._actors if a.state in (UP, DOWN)]
        if not probes or any(a.in_flight for a in probes):
            return None
        return min(probes, key=lambda a: a.down_since or 0.0)

    def _no_actor(self) -> EngineUnavailable:
        why = "; ".join(f"{a.name}: {a.last_error}" for a in self._actors if a.last_error)
        if self._cluster_error:
            why = f"{why}; the cluster: {self._cluster_error}" if why else self._cluster_error
        return _unavailable(
            "no Ray actor of this executor is up to take the call"
            + (f" ({why})" if why else " (no node could take one)")
        )

    def _fail_queued(self, error: Callable[[], ExecutorError]) -> None:
        """Fail every queued call, each with an error of its own (a shared exception object
        would collect every raiser's traceback)."""
        while self._queue:
            call = self._queue.popleft()
            if not call.future.done():
                call.future.set_exception(error())

    async def _send(self, actor: _Actor, calls: list[_Call]) -> None:
        """One chunk: ``accept`` (the delivery point), then ``run``'s results as they come."""
        ray = self._ray
        token = next(self._tokens)
        pending = dict(enumerate(calls))
        accepted = False
        for index, call in pending.items():
            call.where = (actor, token, index)
            call.attempts += 1
        try:
            try:
                await actor.handle.accept.remote(token, [c.payload for c in calls])
            except ray.exceptions.RayError as exc:
                # run() was never sent, so nothing of this chunk can have started.
                self._lost(actor, exc)
                for call in calls:
                    self._retry(call, actor, exc)
                pending.clear()
                return
            accepted = True
            actor.chunks += 1
            gone = [i for i, c in pending.items() if c.future.done()]
            if len(gone) == len(pending):
                self._fire(actor.handle.cancel.remote(token))
                return
            if gone:
                actor.cancels.setdefault(token, []).extend(gone)
            timeout = self.config.timeout
            guard = math.inf if timeout is None else timeout + STREAM_GRACE
            try:
                with anyio.move_on_after(guard) as scope:
                    async for batch in self._results(actor, token, len(calls) - len(gone)):
                        for index, raw, meta in batch:
                            finished = pending.get(index)
                            if finished is not None:
                                del pending[index]
                                actor.in_flight -= 1
                                self._settle(finished, actor, raw, meta)
                        self._kick()
            except ray.exceptions.RayError as exc:
                self._lost(actor, exc)
                self._fail_lost(pending, actor, _describe(exc))
            else:
                if scope.cancelled_caught:
                    actor.down(DOWN, f"a chunk got no result within {guard:g} s")
                    self._fire(actor.handle.cancel.remote(token))
                    self._fail_lost(pending, actor, f"no result within {guard:g} s")
                elif pending:
                    self._fail_lost(pending, actor, "its results ended without these")
        finally:
            # Only when cancelled (aclose): what was accepted may have run.
            if accepted:
                self._fail_lost(pending, actor, "the executor was closed")
            actor.in_flight -= len(pending)
            for call in pending.values():
                call.where = None
                if not call.future.done():
                    call.future.set_exception(ExecutorClosed())
            self._kick()

    async def _results(self, actor: _Actor, token: int, size: int) -> AsyncIterator[list[Result]]:
        """The chunk's results: streamed in batches when the chunk may take a while, else
        (and over Ray Client, which has no streaming calls) all at once in one reply."""
        quick = actor.avg_call is not None and actor.avg_call * size < STREAM_AFTER
        if self._client_mode or size == 1 or quick:
            yield await actor.handle.run_all.remote(token)
            return
        async for ref in actor.handle.run.options(num_returns="streaming").remote(token):
            yield await ref

    def _fire(self, ref: Any) -> None:
        """Await a fire-and-forget actor call in the background, so its failure (the actor
        died) is consumed here instead of logged by Ray as an unhandled error."""

        async def consume() -> None:
            with contextlib.suppress(self._ray.exceptions.RayError):
                await ref

        if self._tg is not None:
            self._tg.start_soon(consume)

    def _settle(self, call: _Call, actor: _Actor, raw: bytes | None, meta: Any) -> None:
        """Resolve one call from its result: output, error, or a retry elsewhere."""
        call.where = None
        actor.calls += 1
        if call.future.done():  # the caller gave up (cancelled)
            return
        if raw is not None:
            duration = meta[0]
            avg = actor.avg_call
            actor.avg_call = duration if avg is None else 0.8 * avg + 0.2 * duration
            call.future.set_result((raw, meta))
            return
        error: ExecutorError = meta if meta is not None else WorkerLost("cancelled")
        if isinstance(error, EngineUnavailable) and actor.engine_up:
            actor.engine_up = False
            actor.last_error = error.message
            actor.down_since = time.monotonic()
        if getattr(error, "delivered", None) is False and call.attempts < 2:
            self._queue.appendleft(call)
            return
        call.future.set_exception(error)

    def _retry(self, call: _Call, actor: _Actor, exc: BaseException) -> None:
        """Requeue an undelivered call once; a second failure is EngineUnavailable."""
        call.where = None
        actor.in_flight -= 1
        if call.future.done():
            return
        if call.attempts < 2:
            self._queue.appendleft(call)
            return
        call.future.set_exception(
            _unavailable(
                f"the call reached no Ray actor in {call.attempts} tries "
                f"(last: {actor.name}: {_describe(exc)})"
            )
        )

    def _fail_lost(self, pending: dict[int, _Call], actor: _Actor, why: str) -> None:
        worker = f"{actor.node_id}/{actor.actor_id}"
        for call in pending.values():
            call.where = None
            if not call.future.done():
                call.future.set_exception(
                    WorkerLost(
                        f"the Ray actor ({actor.name}) was lost after the call was delivered "
                        f"({why}); it may have run, so it is not retried",
                        worker=worker,
                    )
                )
        actor.in_flight -= len(pending)
        pending.clear()

    def _lost(self, actor: _Actor, exc: BaseException) -> None:
        """Take an actor out of routing after a Ray failure: dead, or down until a ping."""
        ray = self._ray
        why = _describe(exc)
        # ActorDiedError came with Ray 2.10; before, every actor failure is a RayActorError
        # (taken as down here, and as dead once it stays down for DOWN_DEADLINE).
        if isinstance(exc, getattr(ray.exceptions, "ActorDiedError", ())):
            actor.down(DEAD, why)
        elif isinstance(exc, ray.exceptions.RayActorError):  # unavailable: maybe back soon
            actor.down(DOWN, why)
        else:
            actor.last_error = why

    def _abandon(self, call: _Call) -> None:
        """The caller was cancelled: have the actor kill the call's container, if it runs."""
        if call.where is not None:
            actor, token, index = call.where
            actor.cancels.setdefault(token, []).append(index)
            self._kick()

    def _send_cancels(self) -> None:
        for actor in self._actors:
            if actor.cancels and actor.handle is not None and actor.state != DEAD:
                for token, indices in actor.cancels.items():
                    self._fire(actor.handle.cancel.remote(token, indices))
            actor.cancels.clear()

    # -- actors --------------------------------------------------------------------------------

    async def _start(self) -> None:
        """Connect to Ray, place the actors and wait for their start (once)."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise ExecutorClosed()
            ray = self._ray
            if not ray.is_initialized():
                await self._connect()
            self._client_mode = _client_mode()
            self._actor_class = _actor_class(ray)
            self._wake = asyncio.Event()
            self._booted = asyncio.Event()
            started = anyio.Event()
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise(started))
            await started.wait()
            # Wait for the first actors to start, but not for long once one is up: a node
            # that just died is still listed alive for seconds, and its actor fails late.
            with anyio.move_on_after(START_TIMEOUT):
                await self._booted.wait()
            self._started = True

    async def _connect(self) -> None:
        """``ray.init`` (in a thread: connecting, or starting a local cluster, takes seconds)."""
        where = self._address or "the default address (RAY_ADDRESS, else a new local cluster)"
        try:
            await anyio.to_thread.run_sync(
                partial(self._ray.init, address=self._address, ignore_reinit_error=True)
            )
        except ValueError as exc:
            raise ConfigError(f"RayExecutor: cannot use Ray address {where}: {exc}") from exc
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, its own errors
            raise _unavailable(
                f"cannot connect to the Ray cluster at {where}: {_first_line(exc)}"
            ) from exc

    async def _supervise(self, started: anyio.Event) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._reconcile()
                tg.start_soon(self._dispatch_loop)
                tg.start_soon(self._watch)
                self._note_booted()
                started.set()
        finally:
            self._tg = None
            started.set()
            self._booted.set()

    async def _watch(self) -> None:
        """Every second: reconcile with the nodes, ping unreachable actors, probe engines."""
        while True:
            await anyio.sleep(HEALTH_INTERVAL)
            try:
                await self._reconcile()
            except Exception as exc:  # the GCS unreachable for a while: keep supervising
                self._cluster_error = f"{type(exc).__name__}: {_first_line(exc)}"
            else:
                self._cluster_error = None
            now = time.monotonic()
            async with anyio.create_task_group() as tg:
                for actor in self._actors:
                    if actor.state == DOWN and now - (actor.down_since or now) > DOWN_DEADLINE:
                        actor.down(DEAD, f"unreachable for {DOWN_DEADLINE:g} s")
                        self._ray.kill(actor.handle, no_restart=True)
                    elif actor.state == DOWN or (actor.state == UP and not actor.engine_up):
                        tg.start_soon(self._check, actor)
            self._kick()

    async def _check(self, actor: _Actor) -> None:
        ray = self._ray
        with anyio.move_on_after(PING_TIMEOUT):
            try:
                if actor.state == DOWN:
                    await actor.handle.status.remote()
                    actor.state = UP
                    actor.down_since = None if actor.engine_up else actor.down_since
                if not actor.engine_up and await actor.handle.probe.remote():
                    actor.engine_up = True
                    actor.down_since = None
            except ray.exceptions.RayError as exc:
                self._lost(actor, exc)

    async def _reconcile(self) -> None:
        """Drop actors of dead nodes, place missing ones, rebalance ``actors=N``."""
        assert self._tg is not None
        nodes = await anyio.to_thread.run_sync(self._ray.nodes)
        alive = sorted(str(n["NodeID"]) for n in nodes if n.get("Alive"))
        now = time.monotonic()
        for actor in self._actors:
            if actor.node_id not in alive:
                actor.down(DEAD, actor.last_error or "its node died")
        self._actors = [
            a
            for a in self._actors
            if not (a.state == DEAD and not a.in_flight and now - (a.died_at or now) > KEEP_DEAD)
        ]
        for actor in self._actors:
            if actor.state == DRAINING and not actor.in_flight:
                actor.down(DEAD, "retired: rebalanced to another node")
                self._tg.start_soon(self._close_actor, actor)
        live: dict[str, list[_Actor]] = {node: [] for node in alive}
        for actor in self._actors:
            if actor.state in (STARTING, UP, DOWN) and actor.node_id in live:
                live[actor.node_id].append(actor)
        usable = [n for n in alive if self._backoff.get(n, (0.0, 0.0))[0] <= now]
        if not usable:
            return
        if self._n_actors is None:
            for node in usable:
                if not live[node]:
                    self._place(node)
            return
        total = sum(len(v) for v in live.values())
        for _ in range(self._n_actors - total):
            node = min(usable, key=lambda n: len(live[n]))
            live[node].append(self._place(node))
        # A node that came back gets its share: retire one actor of the fullest node.
        fullest = max(alive, key=lambda n: len(live[n]))
        emptiest = min(usable, key=lambda n: len(live[n]))
        if len(live[fullest]) - len(live[emptiest]) > 1:
            ups = [a for a in live[fullest] if a.state == UP]
            if ups:
                min(ups, key=lambda a: a.in_flight).state = DRAINING
                self._place(emptiest)

    def _place(self, node_id: str) -> _Actor:
        assert self._tg is not None
        actor = _Actor(node_id=node_id, window=self._window)
        self._actors.append(actor)
        self._tg.start_soon(self._boot, actor)
        return actor

    def _note_booted(self) -> None:
        if not any(a.state == STARTING for a in self._actors):
            self._booted.set()
        elif self._tg is not None and any(a.state == UP for a in self._actors):
            self._tg.start_soon(self._settle_start)

    async def _settle_start(self) -> None:
        await anyio.sleep(START_SETTLE)
        self._booted.set()

    async def _boot(self, actor: _Actor) -> None:
        try:
            await self._boot_actor(actor)
        finally:
            self._note_booted()
            self._kick()

    async def _boot_actor(self, actor: _Actor) -> None:
        ray = self._ray
        strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            actor.node_id, soft=False
        )
        try:
            actor.handle = self._actor_class.options(
                scheduling_strategy=strategy, num_cpus=0, max_restarts=0, max_task_retries=0
            ).remote(self._worker_config)
            with anyio.fail_after(START_TIMEOUT):
                info = await actor.handle.start.remote()
        except (ray.exceptions.RayError, TimeoutError) as exc:
            actor.down(DEAD, f"did not start: {_describe(exc)}")
            last = self._backoff.get(actor.node_id, (0.0, PLACE_BACKOFF / 2))[1]
            delay = min(last * 2, PLACE_BACKOFF_MAX)
            self._backoff[actor.node_id] = (time.monotonic() + delay, delay)
            if actor.handle is not None:
                ray.kill(actor.handle, no_restart=True)
            return
        self._backoff.pop(actor.node_id, None)
        if actor.state != STARTING:  # its node died meanwhile
            return
        actor.actor_id = info["actor_id"]
        actor.engine = info["engine"]
        actor.host = info["host"]
        actor.pid = info["pid"]
        actor.engine_up = info["engine_up"]
        if not actor.engine_up:
            actor.last_error = f"the engine {actor.engine} does not answer"
            actor.down_since = time.monotonic()
        actor.state = UP

    async def _close_actor(self, actor: _Actor) -> None:
        ray = self._ray
        if actor.handle is None:
            return
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(CLOSE_TIMEOUT),
            contextlib.suppress(ray.exceptions.RayError),
        ):
            await actor.handle.close.remote()
        ray.kill(actor.handle, no_restart=True)

    # -- closing -------------------------------------------------------------------------------

    async def __aenter__(self) -> RayExecutor[A, B]:
        await self._start()
        return self

    async def aclose(self) -> None:
        """Fail queued calls, cancel running ones, close every actor (its containers go)."""
        self._closed = True
        self._fail_queued(ExecutorClosed)
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({supervisor})
        actors, self._actors = self._actors, []
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for actor in actors:
                    if actor.state != DEAD:
                        tg.start_soon(self._close_actor, actor)


_ACTOR_CLASS: Any = None


def _actor_class(ray: Any) -> Any:
    """``NodeWorker`` as a Ray actor class (made once per process)."""
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = ray.remote(NodeWorker)
    return _ACTOR_CLASS


def _unavailable(message: str) -> EngineUnavailable:
    """EngineUnavailable about the Ray cluster, without the class's hint about Docker."""
    return EngineUnavailable(message + ".", hint="")


def _client_mode() -> bool:
    """Whether this process talks to Ray through Ray Client (``ray://``)."""
    try:
        from ray.util.client import ray as client
    except ImportError:
        return False
    return bool(client.is_connected())


def _describe(exc: BaseException) -> str:
    """A Ray error in one line; a task error names the exception raised in the actor."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {_first_line(cause)}"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["RayExecutor"]
