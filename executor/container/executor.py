"""``ContainerExecutor``: run each call in a locked-down container, over the engine seam.

The life of one call::

    coerce input ─► encode request (once) ─► route to an engine (least loaded, retry once
      if undelivered) ─► lease a container (fresh / pool / worker / fork, under admission
      control and ``start_timeout``) ─► write the request, read the answer (``timeout``)
      ─► decode + validate output, or ask the engine why ─► give the container back or
      remove it (in the background)

This module holds the public class: settings, types, the background supervisor, lifecycle.
The call path lives in :mod:`~executor.container.core` (one engine) and
:mod:`~executor.container.routing` (several).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

from .._base import Execution, Executor, resolve_types
from .._errors import ConfigError, EngineUnavailable, ExecutorClosed
from .._observe import instrument, observer
from .._schema import Codec, codecs
from .._settings import checked_keywords
from .._stream import ExecutionStream
from ..engine import INSTANCE_LABEL, MANAGED_LABEL, OWNER_LABEL, owner_id, shielded
from ..protocol import Collect
from .config import ContainerConfig
from .core import EngineCore
from .exchange import CallSpec, Encoder, Outgoing, collect_allowance, misplaced_task
from .lifecycle import Background
from .routing import Router, make_engines
from .sweeper import hand_over, mark_closed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._stream import Tap
    from ..engine import Engine
    from .config import EngineEndpoint
    from .sources import Pool

__all__ = ["ContainerExecutor"]

A = TypeVar("A")
B = TypeVar("B")

_perf = time.perf_counter


@checked_keywords()
class ContainerExecutor(Executor[A, B], Generic[A, B]):
    """Run each call in a fresh, locked-down container (or a pooled, reused or fork one).

    Created anywhere (no event loop needed); engine clients are made lazily inside the
    running loop and closed by :meth:`aclose`. Use it as ``async with`` so that container
    removal, pool refills and engine health checks run in the background and are awaited on
    exit. asyncio only (aiodocker is): under trio it raises :class:`ConfigError`. After
    :meth:`aclose` every call raises :class:`ExecutorClosed`.

    Engines: by default the config's (``docker_url`` or ``engines``: URLs and
    :class:`EngineEndpoint`), else ``DOCKER_HOST``/the Docker context. Live engine objects go
    here, not in the config: ``engine=`` one :class:`executor.engine.Engine` (a
    ``DockerEngine`` over your aiodocker client, a ``FakeEngine``, your own), or
    ``engines=[...]`` (Engines, URLs or EngineEndpoints) to spread calls over several.
    Engines passed in stay yours (not closed by :meth:`aclose`); those made here are closed.
    """

    def __init__(
        self,
        config: ContainerConfig,
        *,
        input_type: Any = None,
        output_type: Any = None,
        engine: Engine | None = None,
        engines: Sequence[str | EngineEndpoint | Engine] | None = None,
        _types: tuple[Any, Any] | None = None,
    ) -> None:
        if not isinstance(config, ContainerConfig):
            raise ConfigError(f"config must be a ContainerConfig, got {type(config).__name__}")
        self.config = config
        self.input_type, self.output_type = resolve_types(
            type(self), _types, input_type, output_type
        )
        self._in: Codec[A]
        self._out: Codec[B]
        self._in, self._out = codecs(config, self.input_type, self.output_type)
        self._wire = self._in.wire
        made = make_engines(
            config.engines, docker_url=config.docker_url, engine=engine, engines=engines
        )
        clients = [e for e, _ in made]
        #: Engines this executor made (closed by aclose); engines passed in stay the caller's.
        self._owned = [e for e, owned in made if owned]
        self._labels = {
            MANAGED_LABEL: "true",
            OWNER_LABEL: owner_id(),
            INSTANCE_LABEL: uuid.uuid4().hex,
        }
        files = {
            path: content.encode() if isinstance(content, str) else bytes(content)
            for path, content in config.files.items()
        }
        self._background = Background()
        fork = config.fork
        collect = (
            Collect(config.collect, config.max_collect_bytes, config.max_collect_files)
            if config.collect is not None
            else None
        )
        # The response may carry the collected files on top of the output.
        read_limit = config.max_output_bytes + collect_allowance(collect)
        spec = CallSpec(
            image=config.image,
            memory_bytes=config.memory_bytes,
            max_output_bytes=config.max_output_bytes,
            max_log_bytes=config.max_log_bytes,
            timeout=config.timeout,
            decode=self._out.decode_json,
            collect=collect,
            read_limit=read_limit,
            no_task_hint=misplaced_task(config.files, config.env),
        )
        self._encoder = Encoder(
            self._in.schema_json,
            self._out.schema_json,
            timeout=config.timeout if fork else None,
            max_output_bytes=read_limit if fork else None,
            collect=collect,
        )
        cores = [
            EngineCore(
                e,
                config,
                labels={**config.labels, **self._labels},
                files=files,
                background=self._background,
                spec=spec,
                peers=self._up_engines,
            )
            for e in clients
        ]
        self._router = Router(cores, self._background, config.health_interval)
        self._closed = False
        self._checked_loop = False
        self._pooled = config.mode != "fresh"
        self._telemetry = instrument(self, kind="container", mode=config.mode, image=config.image)

    # -- inspection ----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The (first) engine this executor runs containers on."""
        return self._router.cores[0].engine

    @property
    def engines(self) -> list[dict[str, Any]]:
        """Per-engine status: name, up, calls in flight and served, capacity, idle pooled."""
        return [core.status() for core in self._router.cores]

    @property
    def labels(self) -> dict[str, str]:
        """The labels every container of this executor carries."""
        return {**self.config.labels, **self._labels}

    @property
    def _pool(self) -> Pool | None:
        """The first engine's pool (most executors have one engine)."""
        return self._router.cores[0].pool

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def __repr__(self) -> str:
        engines = ", ".join(core.name for core in self._router.cores)
        state = "closed" if self._closed else self.config.mode
        return f"<ContainerExecutor {self.config.image} {state} on {engines}>"

    def _up_engines(self) -> list[Engine]:
        return [core.engine for core in self._router.cores if core.up]

    # -- lifecycle -----------------------------------------------------------------------------

    def _check_loop(self) -> None:
        if self._checked_loop:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigError(
                "ContainerExecutor runs on asyncio only (aiodocker is asyncio-only) and no "
                "asyncio loop is running here (trio?): run it under asyncio (anyio.run(main) "
                "uses asyncio by default); LocalExecutor works under both"
            ) from None
        self._checked_loop = True

    async def _start_background(self) -> None:
        await self._background.start(self._router.watch)

    async def __aenter__(self) -> ContainerExecutor[A, B]:
        self._check_loop()
        if self._closed:
            raise ExecutorClosed()
        await self._start_background()
        if self.config.reap_on_start:
            from .reaping import reap

            for core in self._router.cores:
                with contextlib.suppress(EngineUnavailable):  # a call will report it
                    await reap(engine=core.engine, labels=self.config.labels)
        if self._pooled and self.config.prewarm:
            async with anyio.create_task_group() as tg:
                for core in self._router.cores:
                    tg.start_soon(self._fill, core)
        return self

    @staticmethod
    async def _fill(core: EngineCore) -> None:
        await core.source.fill(await core.readiness.get())

    async def aclose(self) -> None:
        """Remove idle pooled containers, wait for background work, close the clients.

        Containers that cannot be removed because an engine is down are handed to a
        process-wide sweeper that removes them once the engine answers again.
        """
        if self._closed and self._background.closed:
            return
        self._closed = True
        try:
            for core in self._router.cores:
                await core.aclose()
            await self._background.aclose()
            with anyio.CancelScope(shield=True):
                for core in self._router.cores:
                    if core.readiness.body is None:
                        continue  # never made a container there
                    left = await core.sweep(stopped_only=False)
                    if left and core.engine.reconnect() is not None:
                        hand_over(core.name, core.instance, _connector(core.engine))
            mark_closed(self._labels[INSTANCE_LABEL])
        finally:
            with shielded():
                for engine in self._owned:
                    await engine.aclose()

    # -- calls ---------------------------------------------------------------------------------

    def _encode(self, value: Any) -> Outgoing:
        try:
            return self._encoder(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise self._in.fail(f"cannot be encoded as JSON: {exc}") from None
        except RecursionError:
            raise self._in.fail("is nested too deeply to be encoded as JSON") from None

    def _begin(self, input: A | Any) -> tuple[float, Outgoing]:
        """A call's start time and request, or the error that stops it before any engine call."""
        if self._closed:
            raise ExecutorClosed()
        if not self._checked_loop:
            self._check_loop()
        t0 = _perf()
        value = self._in.coerce(input)
        if self._wire is not None:  # a pydantic model: msgspec cannot encode it
            value = self._wire(value)
        return t0, self._encode(value)

    async def execute(self, input: A | Any) -> B:
        return (await self.run(input)).output

    async def run(self, input: A | Any) -> Execution[B]:
        if (observe := observer()) is not None:  # OpenTelemetry configured: a span, metrics
            return await observe.call(self._telemetry, self._call, input)
        return await self._call(input)

    def stream(self, input: A | Any) -> ExecutionStream[B]:
        """Run one call, yielding the task's log lines live, then its :class:`Execution`.

        ``async with ex.stream(input) as events: async for event in events:``. Each line the
        task writes to stderr (or stdout: the runners send it there) is a :class:`LogLine`
        (``stream="stderr"``) as soon as the engine passes it on; the last event is the
        Execution, whose ``logs`` hold the same lines. Errors, timeouts and cancellation are
        those of :meth:`run`: leaving the block early kills the call's container.
        """
        return ExecutionStream(functools.partial(self._streamed, input))

    async def _streamed(self, input: A | Any, tap: Tap) -> Execution[B]:
        if (observe := observer()) is not None:
            return await observe.call(self._telemetry, self._call, input, tap)
        return await self._call(input, tap)

    async def _call(self, input: A | Any, tap: Tap | None = None) -> Execution[B]:
        """One call, unobserved; ``tap`` (a streamed call) gets the task's stderr live."""
        t0, payload = self._begin(input)
        if tap is not None:
            tap.marker = payload.marker
        if self._pooled:
            # A pool refills in the background: start that even without `async with`.
            await self._start_background()
        start_by = anyio.current_time() + self.config.start_timeout
        return await self._router.call(payload, t0, start_by, tap)


def _connector(engine: Engine) -> Any:
    def connect() -> Engine:
        fresh = engine.reconnect()
        if fresh is None:
            raise EngineUnavailable("the engine cannot be reconnected", engine=engine.name)
        return fresh

    return connect
