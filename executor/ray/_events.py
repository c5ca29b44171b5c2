"""The lifecycle events of the Ray backend, on the ``executor.ray`` logger.

One function per event, as in :mod:`executor._observe`: the message for people, the data as
record attributes (``event``, and where they apply ``node_id``, ``actor_id``, ``engine``,
``count``, ``code``, ``duration``, ``state``). INFO for what goes as planned (an actor placed,
started, back; a node up), WARNING for what loses or delays work (an actor lost, a node down,
a chunk retried, calls failed as ``WorkerLost``). Nothing is logged per call: a retry or a loss
is one record per chunk, with ``count``.

=======================  ==============================================================
``ray.actor.placed``     an actor is being started on a node
``ray.actor.replaced``   the same, on a node whose previous actor was lost
``ray.actor.started``    an actor answered its start (its engine, pid, start time)
``ray.actor.start_failed``  an actor did not start; the node waits before the next try
``ray.actor.lost``       an actor stopped answering (``state`` down) or died (dead)
``ray.actor.back``       an actor that was down answers again
``ray.actor.retired``    an actor is closed to rebalance ``actors=N`` over the nodes
``ray.channel.ray_calls``  the caller cannot connect to an actor: its chunks go as Ray calls
``ray.engine.down``      an actor's engine failed a call: no routing there until a probe
``ray.engine.up``        that engine answers its probe again
``ray.node.down``        a node the executor had seen alive left the cluster
``ray.node.up``          a node joined the cluster, or came back
``ray.call.retry``       calls that never reached a container go to another actor
``ray.call.lost``        delivered calls of a lost actor failed with ``WorkerLost``
``ray.connect.retry``    a ``ray://`` head failed to start the driver's client server
=======================  ==============================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._observe import INFO, RAY, WARNING, event

if TYPE_CHECKING:
    from ._fleet import Actor


def _node(node_id: str) -> str:
    return node_id[:12]


def _where(actor: Actor) -> dict[str, Any]:
    """The record attributes naming an actor: its node, its id, its engine."""
    return {"node_id": actor.node_id, "actor_id": actor.actor_id, "engine": actor.engine}


def actor_placed(node_id: str, lost: Actor | None) -> None:
    """An actor is being started on ``node_id``; ``lost`` is the actor it replaces, if any."""
    if lost is None:
        event(
            RAY,
            INFO,
            "ray.actor.placed",
            "placing a Ray actor on node %s",
            _node(node_id),
            node_id=node_id,
        )
    else:
        event(
            RAY,
            INFO,
            "ray.actor.replaced",
            "placing a Ray actor on node %s to replace actor %s (%s)",
            _node(node_id),
            lost.actor_id,
            lost.last_error,
            node_id=node_id,
            actor_id=lost.actor_id,
        )


def actor_started(actor: Actor, duration: float) -> None:
    event(
        RAY,
        INFO if actor.engine_up else WARNING,
        "ray.actor.started",
        "Ray actor %s started on node %s in %.1f s: engine %s%s, pid %s",
        actor.actor_id,
        _node(actor.node_id),
        duration,
        actor.engine,
        "" if actor.engine_up else " (not answering: no calls go there until it does)",
        actor.pid,
        **_where(actor),
        duration=duration,
    )


def actor_start_failed(node_id: str, why: str, retry_in: float) -> None:
    event(
        RAY,
        WARNING,
        "ray.actor.start_failed",
        "a Ray actor did not start on node %s (%s); next try there in %g s",
        _node(node_id),
        why,
        retry_in,
        node_id=node_id,
        duration=retry_in,
    )


def actor_lost(actor: Actor) -> None:
    """The actor went down (unreachable, maybe back) or dead; ``last_error`` says why."""
    event(
        RAY,
        WARNING,
        "ray.actor.lost",
        "Ray actor %s (%s) is %s: %s",
        actor.actor_id,
        actor.name,
        actor.state,
        actor.last_error,
        **_where(actor),
        state=actor.state,
    )


def actor_back(actor: Actor, down_for: float) -> None:
    event(
        RAY,
        INFO,
        "ray.actor.back",
        "Ray actor %s (%s) answers again after %.1f s",
        actor.actor_id,
        actor.name,
        down_for,
        **_where(actor),
        duration=down_for,
    )


def actor_retired(actor: Actor) -> None:
    event(
        RAY,
        INFO,
        "ray.actor.retired",
        "Ray actor %s (%s) is closed: its share goes to a node that came back",
        actor.actor_id,
        actor.name,
        **_where(actor),
    )


def channel_unreachable(actor: Actor, why: str) -> None:
    event(
        RAY,
        WARNING,
        "ray.channel.ray_calls",
        "cannot connect to Ray actor %s (%s) for its data (%s); its chunks go as Ray calls "
        "(about 1 ms of CPU more per chunk): let this process reach the node's ports, or "
        "pass data_channel=False to choose this",
        actor.actor_id,
        actor.name,
        why,
        **_where(actor),
    )


def engine_down(actor: Actor, code: str) -> None:
    event(
        RAY,
        WARNING,
        "ray.engine.down",
        "the engine of Ray actor %s (%s) does not answer: %s; no calls go there until it does",
        actor.actor_id,
        actor.name,
        actor.last_error,
        **_where(actor),
        code=code,
    )


def engine_up(actor: Actor, down_for: float) -> None:
    event(
        RAY,
        INFO,
        "ray.engine.up",
        "the engine of Ray actor %s (%s) answers again after %.1f s",
        actor.actor_id,
        actor.name,
        down_for,
        **_where(actor),
        duration=down_for,
    )


def connect_retried(address: str, attempt: int, why: str) -> None:
    """The Ray Client server at ``address`` failed to start this driver's server; again."""
    event(
        RAY,
        WARNING,
        "ray.connect.retry",
        "the Ray Client server at %s failed to start a server for this driver (%s); "
        "connecting again (attempt %d)",
        address,
        why,
        attempt,
        count=attempt,
    )


def node_down(node_id: str) -> None:
    event(
        RAY,
        WARNING,
        "ray.node.down",
        "Ray node %s left the cluster",
        _node(node_id),
        node_id=node_id,
    )


def node_up(node_id: str, down_for: float | None) -> None:
    """A node alive that was not: new (``down_for`` None) or back."""
    event(
        RAY,
        INFO,
        "ray.node.up",
        "Ray node %s %s",
        _node(node_id),
        "joined the cluster" if down_for is None else f"is back after {down_for:.1f} s",
        node_id=node_id,
        duration=down_for,
    )


def calls_retried(actor: Actor, count: int, why: str, code: str | None = None) -> None:
    """``count`` calls of one chunk never reached a container on ``actor``: sent elsewhere."""
    event(
        RAY,
        WARNING,
        "ray.call.retry",
        "%d call(s) were not delivered to Ray actor %s (%s: %s); retrying on another actor",
        count,
        actor.actor_id,
        actor.name,
        why,
        **_where(actor),
        count=count,
        code=code,
    )


def calls_lost(actor: Actor, count: int, why: str) -> None:
    """``count`` delivered calls of one chunk failed with WorkerLost."""
    event(
        RAY,
        WARNING,
        "ray.call.lost",
        "%d call(s) delivered to Ray actor %s (%s) failed with WorkerLost: %s",
        count,
        actor.actor_id,
        actor.name,
        why,
        **_where(actor),
        count=count,
        code="WORKER_LOST",
    )
