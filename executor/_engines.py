"""Several engines behind one executor: endpoints, per-engine state, routing and health.

Each engine the executor uses is an :class:`EngineSlot`: its :class:`Engine`, a capacity
weight, the calls in flight on it, whether it is up, its create body (image checked once)
and its own warm pool. A call goes to the up engine with the fewest calls in flight per unit
of capacity. An engine is marked down after a call fails with :class:`EngineUnavailable` or a
periodic ping fails, and taken back when a ping answers again.

A call that failed before its request reached a container (create, attach or start failed) is
retried once on another engine; once the request was written, the failure is the caller's to
see: an input is never executed twice without the caller knowing.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._engine import DockerEngine, Engine
from ._errors import ConfigError, EngineUnavailable, ExecutorError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import aiodocker

    from ._pool import Pool

__all__ = ["EngineEndpoint", "EngineSlot", "NotDelivered", "choose", "make_slots"]

#: How long one health ping may take before the engine counts as down.
PING_TIMEOUT = 5.0


@dataclass(frozen=True, kw_only=True)
class EngineEndpoint:
    """One Docker engine: its URL, a capacity weight and optional TLS material.

    ``url`` is ``unix:///path/docker.sock``, ``tcp://host:2376`` or ``ssh://...`` as Docker
    understands it. ``capacity`` weighs routing: an engine with capacity 2 gets twice the
    calls in flight of one with capacity 1. ``tls_ca``/``tls_cert``/``tls_key`` are file paths
    for a TLS-protected TCP engine.
    """

    url: str
    capacity: float = 1.0
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigError("EngineEndpoint.url must be a Docker host URL")
        if not (isinstance(self.capacity, int | float) and self.capacity > 0):
            raise ConfigError(f"EngineEndpoint.capacity must be positive, got {self.capacity!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("EngineEndpoint.tls_cert and tls_key go together")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context for this endpoint, or ``None`` without TLS material."""
        if not (self.tls_ca or self.tls_cert):
            return None
        try:
            context = ssl.create_default_context(cafile=self.tls_ca)
            if self.tls_cert and self.tls_key:
                context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS material for engine {self.url}: {exc}") from exc
        return context


class NotDelivered(Exception):
    """The call failed before its request reached a container (safe to retry elsewhere)."""

    def __init__(self, error: EngineUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


class EngineSlot:
    """One engine as the executor sees it."""

    def __init__(self, engine: Engine, capacity: float = 1.0) -> None:
        self.engine = engine
        self.capacity = capacity
        self.in_flight = 0
        self.calls = 0
        self.down_since: float | None = None
        self.last_error: ExecutorError | None = None
        self.body: dict[str, Any] | None = None
        self.lock = anyio.Lock()
        self.pool: Pool | None = None

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def up(self) -> bool:
        return self.down_since is None

    def mark_down(self, error: ExecutorError) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.last_error = error

    def mark_up(self) -> None:
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

    def status(self) -> dict[str, Any]:
        """A JSON-ready view: name, up, calls in flight and served, capacity, last error."""
        return {
            "engine": self.name,
            "up": self.up,
            "in_flight": self.in_flight,
            "calls": self.calls,
            "capacity": self.capacity,
            "idle_pooled": self.pool.idle if self.pool is not None else 0,
            "last_error": self.last_error.message if self.last_error else None,
        }


def make_slots(
    engines: Sequence[str | EngineEndpoint],
    *,
    docker_url: str | None,
    docker: aiodocker.Docker | None,
    engine: Engine | None,
) -> list[EngineSlot]:
    """Build the slots: the given ``engine`` object, the endpoints, or the one default engine."""
    if engine is not None:
        return [EngineSlot(engine)]
    if not engines:
        return [EngineSlot(DockerEngine(docker_url, docker=docker))]
    if docker_url is not None or docker is not None:
        raise ConfigError("give either engines=[...] or docker_url/docker, not both")
    slots = []
    for item in engines:
        endpoint = item if isinstance(item, EngineEndpoint) else EngineEndpoint(url=item)
        slots.append(
            EngineSlot(
                DockerEngine(endpoint.url, ssl_context=endpoint.ssl_context(), name=endpoint.name),
                endpoint.capacity,
            )
        )
    return slots


def choose(slots: Sequence[EngineSlot], exclude: Callable[[EngineSlot], bool]) -> EngineSlot | None:
    """The up engine with the least load per capacity; if none is up, the one down longest."""
    best: EngineSlot | None = None
    for slot in slots:
        if not slot.up or exclude(slot):
            continue
        if best is None or slot.in_flight / slot.capacity < best.in_flight / best.capacity:
            best = slot
    if best is not None:
        return best
    down = [s for s in slots if not exclude(s)]
    if not down:
        return None
    # Nothing is up: probe the engine that has been down longest (it may be back).
    return min(down, key=lambda s: s.down_since or 0.0)
