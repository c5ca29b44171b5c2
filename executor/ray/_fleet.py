"""The actors of one :class:`~executor.ray.RayExecutor`: placement, start, health, close.

:class:`Fleet` keeps one :class:`Actor` record per placed actor and reconciles them with the
cluster every second: actors on dead nodes are dropped, unreachable ones pinged (and taken
for dead after :data:`DOWN_DEADLINE`), engines that stopped answering probed, missing actors
placed (one per alive node, or ``actors=N`` spread evenly, rebalanced when a node comes back).
A node whose actor failed to start waits :data:`PLACE_BACKOFF`, doubling, before the next try.

The fleet knows nothing of calls: the dispatcher reads :attr:`Fleet.actors`, keeps the call
counters of each :class:`Actor`, and tells the fleet when a Ray call failed (:meth:`lost`) or
an engine stopped answering (:meth:`engine_down`). The fleet calls ``changed`` whenever an
actor became routable or stopped being so, so that waiting calls are dispatched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

import executor.ray._events as events

from .._errors import ConfigError, EngineUnavailable
from ._channel import SECRET_SIZE, Channel, ChannelLost, address
from ._worker import NodeWorker

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup, TaskStatus

    from .. import ContainerConfig

#: How often the fleet reconciles actors with the cluster's nodes.
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
#: An actor unreachable this long while its node is alive is taken for dead and replaced.
DOWN_DEADLINE = 30.0
#: Dead actors stay in :attr:`Fleet.actors` (``up: False`` in ``nodes``) this long.
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
            f"RayExecutor needs Ray ({exc}): install the extra, pip install 'typed-executor[ray]'"
        ) from exc
    return ray


@dataclass(eq=False, slots=True)
class Actor:
    """One placed actor as the caller sees it: the fleet's view and the dispatcher's counters."""

    node_id: str
    handle: Any = None
    state: str = STARTING
    actor_id: str | None = None
    engine: str | None = None
    host: str | None = None
    pid: int | None = None
    engine_up: bool = True
    #: The data connection to the actor (None: chunks go as Ray calls), and where it listens.
    channel: Channel | None = None
    listens: tuple[str, int] | None = None
    # -- kept by the dispatcher --
    in_flight: int = 0
    calls: int = 0
    chunks: int = 0
    #: Moving average of the node executor's call duration (s), to pick how results return.
    avg_call: float | None = None
    #: Inputs the caller gave up on, to cancel on the actor: chunk token -> indices.
    cancels: dict[int, list[int]] = field(default_factory=dict)
    # -- health --
    down_since: float | None = None
    died_at: float | None = None
    last_error: str | None = None

    @property
    def routable(self) -> bool:
        return self.state == UP and self.engine_up

    @property
    def name(self) -> str:
        return f"{self.engine or '?'} on node {self.node_id[:12]}"

    def down(self, state: str, why: str) -> bool:
        """Go ``state`` (down or dead) for ``why``; whether the state changed."""
        if self.state == DEAD:
            return False
        changed = self.state != state
        self.state = state
        self.last_error = why
        if self.down_since is None:
            self.down_since = time.monotonic()
        if state == DEAD:
            self.died_at = time.monotonic()
            channel, self.channel = self.channel, None
            if channel is not None:  # a dead node's connection may never see its end
                channel.close(f"the actor is dead: {why}")
        return changed

    def report(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "actor_id": self.actor_id,
            "engine": self.engine,
            "host": self.host,
            "pid": self.pid,
            "channel": None if self.channel is None else "{}:{}".format(*self.channel.address),
            "calls": self.calls,
            "chunks": self.chunks,
            "in_flight": self.in_flight,
            "up": self.routable,
            "state": self.state if self.engine_up else f"{self.state}, engine down",
            "last_error": self.last_error,
        }


class Fleet:
    """The actors of one executor on the nodes of the cluster ``ray`` is connected to.

    ``worker_config`` is what each actor's :class:`NodeWorker` builds its executor from;
    ``actors`` is ``None`` (one per alive node) or a count; ``data_channel`` whether to
    reach each actor over a connection of its own (see :mod:`executor.ray._channel`). :meth:`run`
    places the first actors, reports itself started, then supervises until cancelled;
    :meth:`close` closes what is left.
    """

    def __init__(
        self,
        ray: Any,
        worker_config: ContainerConfig,
        *,
        actors: int | None,
        changed: Callable[[], None],
        data_channel: bool = True,
    ) -> None:
        self._ray = ray
        self._data_channel = data_channel
        self._secret: bytes | None = None
        self._worker_config = worker_config
        self._n_actors = actors
        self._changed = changed
        self.actors: list[Actor] = []
        #: Why the last look at the cluster failed (the GCS unreachable), while it lasts.
        self.cluster_error: str | None = None
        #: Set once the first actors started (or failed), or START_SETTLE after the first.
        self.booted = asyncio.Event()
        self._backoff: dict[str, tuple[float, float]] = {}  # node -> (until, last delay)
        #: The nodes alive at the last look (None before the first), and since when the
        #: ones that left are gone.
        self._alive: set[str] | None = None
        self._left: dict[str, float] = {}
        self._actor_class: Any = None
        self._tg: TaskGroup | None = None

    def live(self) -> int:
        """Actors starting or up."""
        return sum(a.state in (STARTING, UP) for a in self.actors)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Place the first actors, report started, then reconcile every HEALTH_INTERVAL."""
        self._actor_class = _actor_class(self._ray)
        if self._data_channel and not client_mode():
            self._secret = secrets.token_bytes(SECRET_SIZE)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._reconcile()
                self._note_booted()
                task_status.started()
                await self._watch()
        finally:
            self._tg = None
            self.booted.set()

    def lost(self, actor: Actor, exc: BaseException) -> None:
        """Take an actor out of routing after a Ray failure: dead, or down until a ping."""
        ray = self._ray
        why = describe(exc)
        # ActorDiedError came with Ray 2.10; before, every actor failure is a RayActorError
        # (taken as down here, and as dead once it stays down for DOWN_DEADLINE). A data
        # connection that ended is taken as down: a ping tells whether the actor is alive.
        if isinstance(exc, getattr(ray.exceptions, "ActorDiedError", ())):
            self.down(actor, DEAD, why)
        elif isinstance(exc, (ray.exceptions.RayActorError, ChannelLost)):  # maybe back soon
            self.down(actor, DOWN, why)
        else:
            actor.last_error = why

    def down(self, actor: Actor, state: str, why: str) -> None:
        """Take an actor out of routing: ``DOWN`` (pinged until back) or ``DEAD``."""
        if actor.down(state, why):
            events.actor_lost(actor)

    def engine_down(self, actor: Actor, error: EngineUnavailable) -> None:
        """The actor's engine failed a call: no routing there until a probe answers."""
        if actor.engine_up:
            actor.engine_up = False
            actor.last_error = error.message
            actor.down_since = time.monotonic()
            events.engine_down(actor, error.code)

    async def close(self) -> None:
        """Close every actor not known dead (its executor removes its idle containers)."""
        actors, self.actors = self.actors, []
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for actor in actors:
                    if actor.state != DEAD:
                        tg.start_soon(self._close_actor, actor)

    # -- health --------------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Every second: reconcile with the nodes, ping unreachable actors, probe engines."""
        while True:
            await anyio.sleep(HEALTH_INTERVAL)
            try:
                await self._reconcile()
            except Exception as exc:  # the GCS unreachable for a while: keep supervising
                self.cluster_error = f"{type(exc).__name__}: {first_line(exc)}"
            else:
                self.cluster_error = None
            now = time.monotonic()
            async with anyio.create_task_group() as tg:
                for actor in self.actors:
                    if actor.state == DOWN and now - (actor.down_since or now) > DOWN_DEADLINE:
                        self.down(actor, DEAD, f"unreachable for {DOWN_DEADLINE:g} s")
                        self._ray.kill(actor.handle, no_restart=True)
                    elif actor.state == DOWN or (actor.state == UP and not actor.engine_up):
                        tg.start_soon(self._check, actor)
            self._changed()

    async def _check(self, actor: Actor) -> None:
        ray = self._ray
        with anyio.move_on_after(PING_TIMEOUT):
            try:
                if actor.state == DOWN:
                    await actor.handle.status.remote()
                    if actor.state != DOWN:  # dead meanwhile (its node is gone)
                        return
                    if actor.channel is None:
                        await self._connect(actor)
                    actor.state = UP
                    events.actor_back(actor, _since(actor.down_since))
                    actor.down_since = None if actor.engine_up else actor.down_since
                if not actor.engine_up and await actor.handle.probe.remote():
                    actor.engine_up = True
                    events.engine_up(actor, _since(actor.down_since))
                    actor.down_since = None
            except ray.exceptions.RayError as exc:
                self.lost(actor, exc)

    # -- placement -----------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Drop actors of dead nodes, place missing ones, rebalance ``actors=N``."""
        assert self._tg is not None
        nodes = await anyio.to_thread.run_sync(self._ray.nodes)
        alive = sorted(str(n["NodeID"]) for n in nodes if n.get("Alive"))
        now = time.monotonic()
        self._note_nodes(set(alive), now)
        for actor in self.actors:
            if actor.node_id not in alive:
                self.down(actor, DEAD, actor.last_error or "its node died")
        self.actors = [
            a
            for a in self.actors
            if not (a.state == DEAD and not a.in_flight and now - (a.died_at or now) > KEEP_DEAD)
        ]
        for actor in self.actors:
            if actor.state == DRAINING and not actor.in_flight:
                actor.down(DEAD, "retired: rebalanced to another node")
                events.actor_retired(actor)
                self._tg.start_soon(self._close_actor, actor)
        live: dict[str, list[Actor]] = {node: [] for node in alive}
        for actor in self.actors:
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

    def _note_nodes(self, alive: set[str], now: float) -> None:
        """Log the nodes that left or joined since the last look."""
        before, self._alive = self._alive, alive
        if before is None:
            return
        for node in sorted(before - alive):
            self._left[node] = now
            events.node_down(node)
        for node in sorted(alive - before):
            left = self._left.pop(node, None)
            events.node_up(node, None if left is None else now - left)

    def _place(self, node_id: str) -> Actor:
        assert self._tg is not None
        lost = [
            a
            for a in self.actors
            if a.node_id == node_id and a.state in (DOWN, DEAD) and a.actor_id is not None
        ]
        events.actor_placed(node_id, lost[-1] if lost else None)
        actor = Actor(node_id=node_id)
        self.actors.append(actor)
        self._tg.start_soon(self._boot, actor)
        return actor

    def _note_booted(self) -> None:
        if not any(a.state == STARTING for a in self.actors):
            self.booted.set()
        elif self._tg is not None and any(a.state == UP for a in self.actors):
            self._tg.start_soon(self._settle_start)

    async def _settle_start(self) -> None:
        await anyio.sleep(START_SETTLE)
        self.booted.set()

    async def _boot(self, actor: Actor) -> None:
        try:
            await self._boot_actor(actor)
        finally:
            self._note_booted()
            self._changed()

    async def _boot_actor(self, actor: Actor) -> None:
        ray = self._ray
        t0 = time.monotonic()
        strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            actor.node_id, soft=False
        )
        try:
            actor.handle = self._actor_class.options(
                scheduling_strategy=strategy, num_cpus=0, max_restarts=0, max_task_retries=0
            ).remote(self._worker_config, self._secret)
            with anyio.fail_after(START_TIMEOUT):
                info = await actor.handle.start.remote()
        except (ray.exceptions.RayError, TimeoutError) as exc:
            actor.down(DEAD, f"did not start: {describe(exc)}")
            last = self._backoff.get(actor.node_id, (0.0, PLACE_BACKOFF / 2))[1]
            delay = min(last * 2, PLACE_BACKOFF_MAX)
            self._backoff[actor.node_id] = (time.monotonic() + delay, delay)
            events.actor_start_failed(actor.node_id, describe(exc), delay)
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
        actor.listens = address(info)
        await self._connect(actor)
        if actor.state != STARTING:  # its node died meanwhile
            return
        if not actor.engine_up:
            actor.last_error = f"the engine {actor.engine} does not answer"
            actor.down_since = time.monotonic()
        actor.state = UP
        events.actor_started(actor, time.monotonic() - t0)

    async def _connect(self, actor: Actor) -> None:
        """Open the actor's data connection (else its chunks go as Ray calls)."""
        if self._secret is None or actor.listens is None or self._tg is None:
            return
        try:
            channel = await Channel.open(actor.listens, self._secret)
        except (OSError, TimeoutError) as exc:
            events.channel_unreachable(actor, f"{type(exc).__name__}: {exc}")
            return
        actor.channel = channel
        self._tg.start_soon(self._pump, actor, channel)

    async def _pump(self, actor: Actor, channel: Channel) -> None:
        """Deliver the actor's frames; a connection that ends takes the actor out of routing
        until a ping says it is alive (then it is reopened)."""
        await channel.pump()  # cancelled (the executor closes): close() closes the channel
        if actor.channel is channel:
            actor.channel = None
            if actor.state == UP:
                self.down(actor, DOWN, f"its data connection ended: {channel.lost}")
                self._changed()

    async def _close_actor(self, actor: Actor) -> None:
        ray = self._ray
        channel, actor.channel = actor.channel, None
        if channel is not None:
            channel.close()
        if actor.handle is None:
            return
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(CLOSE_TIMEOUT),
            contextlib.suppress(ray.exceptions.RayError),
        ):
            await actor.handle.close.remote()
        ray.kill(actor.handle, no_restart=True)


def client_mode() -> bool:
    """Whether this process talks to Ray through Ray Client (``ray://``)."""
    try:
        from ray.util.client import ray as client
    except ImportError:
        return False
    return bool(client.is_connected())


def _since(then: float | None) -> float:
    return 0.0 if then is None else time.monotonic() - then


_ACTOR_CLASS: Any = None


def _actor_class(ray: Any) -> Any:
    """``NodeWorker`` as a Ray actor class (made once per process, once Ray is connected)."""
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = ray.remote(NodeWorker)
    return _ACTOR_CLASS


def unavailable(message: str, *, delivered: bool | None = None) -> EngineUnavailable:
    """EngineUnavailable about the Ray cluster, without the class's hint about Docker."""
    return EngineUnavailable(message + ".", hint="", delivered=delivered)


def describe(exc: BaseException) -> str:
    """A Ray error in one line; a task error names the exception raised in the actor."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {first_line(cause)}"
    return f"{type(exc).__name__}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "DEAD",
    "DOWN",
    "STARTING",
    "UP",
    "Actor",
    "Fleet",
    "client_mode",
    "import_ray",
    "unavailable",
]
