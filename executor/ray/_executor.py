"""``RayExecutor``: the caller's side of the Ray backend, composing a fleet and a dispatcher.

The caller converts and validates each input, encodes it once, and hands it to the
:class:`~executor.ray._dispatch.Dispatcher`, which sends queued inputs in chunks to the actors
of the :class:`~executor.ray._fleet.Fleet` (one per node: placement, start, health, close)
and settles each call from its result; each output is decoded into ``B`` here.

Both parts run in one supervisor task, started on entry (or on the first call): the fleet
places the first actors and then reconciles them with the cluster every second; the
dispatcher sends whatever is queued whenever woken. ``aclose()`` fails queued calls, cancels
the supervisor (calls in flight fail) and closes the actors.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

import executor.ray._events as events

from .._base import Execution, Executor, ResultStream, resolve_types
from .._errors import ConfigError, ExecutorClosed, ExecutorError
from .._schema import Codec, codecs
from ._dispatch import Dispatcher
from ._fleet import START_TIMEOUT, Fleet, first_line, import_ray, unavailable

if TYPE_CHECKING:
    from .. import ContainerConfig
    from .._base import Inputs, ProgressCallback

A = TypeVar("A")
B = TypeVar("B")

_perf = time.perf_counter
#: Ray Client's head starts a server per ``ray://`` driver by fork+exec from a process busy
#: with gRPC; the child can abort in gRPC's fork handlers (ray-project/ray#63202), and the
#: driver hears only this. A new connection starts a new server.
_CLIENT_SERVER_CRASHED = "Starting Ray client server failed"
_CLIENT_ATTEMPTS = 3
_CLIENT_SERVER_HINT = (
    " ({} attempts: the head's Ray Client server could not start a server for this driver; "
    "its ray_client_server_*.err logs say why. A known cause is gRPC's fork handlers in the "
    "head (ray-project/ray#63202): start the head with GRPC_ENABLE_FORK_SUPPORT=false)"
)
_json_encode = msgspec.json.Encoder().encode

#: Label on every container an actor makes: ``reap`` on actor start looks only at these.
RAY_LABEL = "executor.ray"


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

    Chunks and results travel over a TCP connection from this process to each actor
    (authenticated by a secret made per executor), a few microseconds per chunk where a Ray
    call costs about 1 ms of CPU; Ray places, watches and closes the actors. Over Ray Client,
    when an actor's node cannot be reached, or with ``data_channel=False``, they go as Ray
    calls instead.

    Asyncio only (Ray's object references are asyncio futures). Use it as ``async with``: the
    actors are placed on entry and closed on exit. Raises :class:`ConfigError` when Ray is not
    installed (``pip install 'typed-executor[ray]'``).
    """

    def __init__(
        self,
        config: ContainerConfig,
        *,
        actors: int | None = None,
        address: str | None = None,
        max_in_flight_per_actor: int = 32,
        chunk_size: int | None = None,
        data_channel: bool = True,
        input_type: Any = None,
        output_type: Any = None,
        _types: tuple[Any, Any] | None = None,
    ) -> None:
        self._ray = import_ray()
        from .. import ContainerConfig

        if not isinstance(config, ContainerConfig):
            raise ConfigError(f"config must be a ContainerConfig, got {type(config).__name__}")
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
        self._in: Codec[A]
        self._out: Codec[B]
        self._in, self._out = codecs(config, self.input_type, self.output_type)
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
        self._fleet = Fleet(
            self._ray,
            self._worker_config,
            actors=actors,
            changed=self._kick,
            data_channel=data_channel,
        )
        self._dispatcher = Dispatcher(
            self._ray,
            self._fleet,
            window=max_in_flight_per_actor,
            chunk_size=chunk_size or max_in_flight_per_actor,
            timeout=config.timeout,
        )
        self._supervisor: asyncio.Task[None] | None = None
        self._start_lock: asyncio.Lock | None = None
        self._started = False
        self._closed = False

    # -- inspection ----------------------------------------------------------------------------

    @property
    def nodes(self) -> list[dict[str, Any]]:
        """Per actor: ``node_id``, ``actor_id``, ``engine``, ``host`` and ``pid`` of the actor
        process, ``channel`` (``"host:port"`` of its data connection, ``None`` when chunks go
        as Ray calls), ``calls`` finished, ``chunks`` received, ``in_flight``, ``up``
        (routable), ``state`` and ``last_error``."""
        return [actor.report() for actor in self._fleet.actors]

    def _default_concurrency(self) -> int:
        """Twice every actor's window: when a window drains to half, the next chunk is already
        queued here, so an actor never waits for the caller to refill it."""
        return 2 * self._window * max(self._fleet.live(), self._n_actors or 1)

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
        call = self._dispatcher.submit(payload)
        try:
            raw, meta = await call.future
        except asyncio.CancelledError:
            self._dispatcher.abandon(call)
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
            raise unavailable(
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
        """As :meth:`Executor.execute_many`; ``concurrency=None`` is twice every actor's window."""
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
        """As :meth:`Executor.map`; ``concurrency=None`` is twice every actor's window (the
        actors placed so far: call it inside ``async with``)."""
        return super().map(
            inputs,
            concurrency=self._default_concurrency() if concurrency is None else concurrency,
            on_progress=on_progress,
        )

    def _kick(self) -> None:
        """Have the dispatcher look at the queue again (an actor's state changed)."""
        self._dispatcher.kick()

    # -- start ---------------------------------------------------------------------------------

    async def _start(self) -> None:
        """Connect to Ray, place the actors and wait for their start (once)."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise ExecutorClosed()
            if not self._ray.is_initialized():
                await self._connect()
            started = anyio.Event()
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise(started))
            await started.wait()
            # Wait for the first actors to start, but not for long once one is up: a node
            # that just died is still listed alive for seconds, and its actor fails late.
            with anyio.move_on_after(START_TIMEOUT):
                await self._fleet.booted.wait()
            self._started = True

    async def _connect(self) -> None:
        """``ray.init`` (in a thread: connecting, or starting a local cluster, takes seconds)."""
        where = self._address or "the default address (RAY_ADDRESS, else a new local cluster)"
        for attempt in range(1, _CLIENT_ATTEMPTS + 1):
            try:
                await anyio.to_thread.run_sync(
                    partial(self._ray.init, address=self._address, ignore_reinit_error=True)
                )
                return
            except ValueError as exc:
                raise ConfigError(f"RayExecutor: cannot use Ray address {where}: {exc}") from exc
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, its own errors
                crashed = _CLIENT_SERVER_CRASHED in str(exc)
                if crashed and attempt < _CLIENT_ATTEMPTS:
                    # ray.init disconnected the failed client: a new attempt starts clean.
                    events.connect_retried(where, attempt, first_line(exc))
                    await anyio.sleep(0.5 * attempt)
                    continue
                hint = _CLIENT_SERVER_HINT.format(attempt) if crashed else ""
                raise unavailable(
                    f"cannot connect to the Ray cluster at {where}: {first_line(exc)}{hint}"
                ) from exc

    async def _supervise(self, started: anyio.Event) -> None:
        """The fleet and the dispatcher, in one task that ``aclose()`` cancels."""
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self._fleet.run)
                tg.start_soon(self._dispatcher.run)
                started.set()
        finally:
            started.set()
            self._fleet.booted.set()

    # -- closing -------------------------------------------------------------------------------

    async def __aenter__(self) -> RayExecutor[A, B]:
        await self._start()
        return self

    async def aclose(self) -> None:
        """Fail queued calls, cancel running ones, close every actor (its containers go)."""
        self._closed = True
        self._dispatcher.fail_queued(ExecutorClosed)
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({supervisor})
        await self._fleet.close()


__all__ = ["RayExecutor"]
