"""Several engines behind one executor: endpoints, routing, failover and health.

Each engine is an :class:`~executor.container.core.EngineCore`; the :class:`Router` sends a
call to the up engine with the fewest calls in flight per unit of capacity. An engine is
marked down after a call fails with :class:`EngineUnavailable` or a periodic ping fails, and
taken back when it answers again (its stopped leftovers are then swept).

A call that failed before its request reached a container (create, attach or start failed) is
retried once on another engine; once the request was written, the failure is the caller's to
see: an input is never executed twice without the caller knowing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .._errors import ConfigError, EngineUnavailable
from .._observe import retried
from ..engine import Engine
from .config import EngineEndpoint
from .core import EngineCore, NotDelivered

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._base import Execution
    from .._stream import Tap
    from .exchange import Outgoing
    from .lifecycle import Background

__all__ = ["EngineEndpoint", "Router", "choose", "make_engines"]


def make_engines(
    configured: Sequence[str | EngineEndpoint],
    *,
    docker_url: str | None,
    engine: Engine | None = None,
    engines: Sequence[str | EngineEndpoint | Engine] | None = None,
) -> list[tuple[Engine, bool]]:
    """The engines of an executor, each with whether the executor made it (and closes it).

    The executor's ``engine`` object or ``engines`` (URLs, endpoints or engine objects), else
    the config's (``configured``: URLs or endpoints; ``docker_url``), else aiodocker's
    discovery.
    """
    if engine is not None and engines is not None:
        raise ConfigError("give ContainerExecutor either engine= or engines=[...], not both")
    if engine is not None or engines is not None:
        if configured or docker_url is not None:
            raise ConfigError(
                "engines given twice: in the ContainerConfig (engines/docker_url) and to "
                "the executor (engine=/engines=); give them in one place"
            )
        if engine is not None:
            if not isinstance(engine, Engine):
                raise ConfigError(
                    f"engine= must be an Engine (executor.engine.Engine), got {engine!r}"
                )
            return [(engine, False)]
        if isinstance(engines, str | bytes) or not engines:
            raise ConfigError(f"engines= must be a non-empty list, got {engines!r}")
    items = engines if engines is not None else configured
    if not items:
        from ..engine.docker import DockerEngine

        return [(DockerEngine(docker_url), True)]
    out: list[tuple[Engine, bool]] = []
    for item in items:
        if isinstance(item, Engine):
            out.append((item, False))
        elif isinstance(item, EngineEndpoint):
            out.append((item.engine(), True))
        elif isinstance(item, str):
            out.append((EngineEndpoint(url=item).engine(), True))
        else:
            raise ConfigError(
                f"engines entries must be URLs, EngineEndpoints or Engines, got {item!r}"
            )
    return out


def choose(cores: Sequence[EngineCore], exclude: Callable[[EngineCore], bool]) -> EngineCore | None:
    """The up engine with the least load per capacity; if none is up, the one down longest."""
    best: EngineCore | None = None
    for core in cores:
        if not core.up or exclude(core):
            continue
        if best is None or core.in_flight / core.capacity < best.in_flight / best.capacity:
            best = core
    if best is not None:
        return best
    down = [c for c in cores if not exclude(c)]
    if not down:
        return None
    # Nothing is up: probe the engine that has been down longest (it may be back).
    return min(down, key=lambda c: c.down_since or 0.0)


class Router:
    """Routes calls over the cores, with failover and health checks."""

    def __init__(self, cores: list[EngineCore], background: Background, interval: float) -> None:
        self.cores = cores
        self._background = background
        self._interval = interval

    async def call(
        self, payload: Outgoing, t0: float, start_by: float, tap: Tap | None = None
    ) -> Execution[Any]:
        """Send the call to the least-loaded engine; retry once elsewhere if undelivered."""
        cores = self.cores
        tried: list[EngineCore] = []
        while True:
            core = cores[0] if len(cores) == 1 else choose(cores, tried.__contains__)
            if core is None:
                error = tried[-1].last_error if tried else None
                raise error or EngineUnavailable("no engine left to try.", delivered=False)
            core.in_flight += 1
            try:
                result = await core.call(payload, t0, start_by, tap)
            except NotDelivered as undelivered:
                core.mark_down(undelivered.error)
                tried.append(core)
                if len(tried) > 1 or len(cores) == 1:
                    undelivered.error.delivered = False  # it never reached a container
                    undelivered.error.retryable = True
                    raise undelivered.error from None
                retried(core.name, undelivered.error)
                continue
            except EngineUnavailable as exc:
                core.mark_down(exc)
                raise
            finally:
                core.in_flight -= 1
            core.calls += 1
            if not core.up:
                core.mark_up()
                self._background.spawn(self._swept, core)
            return result

    async def _swept(self, core: EngineCore) -> None:
        await core.sweep(stopped_only=True)

    async def watch(self) -> None:
        """Ping every engine periodically: mark down the silent, take back the answering."""
        if len(self.cores) < 2:
            return

        async def check(core: EngineCore) -> None:
            was_up = core.up
            if await core.ping() and not was_up:
                await core.sweep(stopped_only=True)

        closing = self._background.closing
        while not closing.is_set():
            async with anyio.create_task_group() as tg:
                for core in self.cores:
                    tg.start_soon(check, core)
            with anyio.move_on_after(self._interval):
                await closing.wait()
