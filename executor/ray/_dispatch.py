"""The dispatcher of :class:`~executor.ray.RayExecutor`: queued calls to actors, in chunks.

Calls are queued already encoded. The dispatch loop sends the queue in chunks to the
least-loaded routable actor whose window (``max_in_flight_per_actor``) has drained to half:
calls queued together (a batch, or concurrent ``execute`` calls) travel together, so Ray's
cost per actor call (about 1 ms of CPU here) is paid per chunk. Results come back in one reply
for a quick chunk, else streamed as they finish (up to 50 ms' worth per message).

Delivery (see :mod:`executor.ray._worker` for the two-call chunk protocol):

* a chunk whose ``accept`` failed never ran: its calls go back to the front of the queue and
  are retried once on another actor; a second failure is :class:`EngineUnavailable`;
* a call of an accepted chunk whose result never came (the actor or its node died) fails with
  :class:`WorkerLost`: it may have run, and is never sent again;
* an error that says ``delivered=False`` (:class:`StartTimeout`, an
  :class:`EngineUnavailable` raised before the request reached a container) is retried once
  like an unaccepted call; an :class:`EngineUnavailable` result takes the actor out of routing
  until its engine answers a probe;
* with no actor left to route to (and none starting), queued calls fail with
  :class:`EngineUnavailable` at once rather than wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

import executor.ray._events as events

from .._errors import EngineUnavailable, ExecutorClosed, ExecutorError, WorkerLost
from ._channel import ChannelLost
from ._fleet import DEAD, DOWN, STARTING, UP, Actor, client_mode, describe, unavailable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import TaskGroup

    from ._channel import Channel
    from ._fleet import Fleet
    from ._worker import Result

#: Slack over ``config.timeout`` before a silent chunk counts as lost (transport, cleanup).
STREAM_GRACE = 30.0
#: A chunk whose calls add up to less than this (by the actor's average call) returns its
#: results in one reply: a streamed call costs more (645 vs 580 calls/s in bench/ray.py), and
#: is worth it only when results would otherwise wait long for the chunk's slowest call.
STREAM_AFTER = 0.25


@dataclass(eq=False, slots=True)
class Call:
    """One queued input, encoded, and the future its caller awaits."""

    payload: bytes
    future: asyncio.Future[tuple[bytes, Any]]
    attempts: int = 0
    #: ``(actor, token, index)`` while the call is part of a chunk sent to an actor.
    where: tuple[Actor, int, int] | None = None
    #: The actor that did not deliver it, while it waits for a retry elsewhere.
    failed_on: Actor | None = None


class Dispatcher:
    """Sends queued calls in chunks to the fleet's actors and settles them from the results.

    ``window`` is ``max_in_flight_per_actor``, ``chunk_size`` the most inputs of one actor
    call, ``timeout`` the config's (a chunk silent for longer is lost). :meth:`run` dispatches
    until cancelled; its cancellation fails what is in flight.
    """

    def __init__(
        self,
        ray: Any,
        fleet: Fleet,
        *,
        window: int,
        chunk_size: int,
        timeout: float | None,
    ) -> None:
        self._ray = ray
        self._fleet = fleet
        self._window = window
        self._low_water = window // 2
        self._chunk_size = chunk_size
        self._timeout = timeout
        self._client_mode = False
        self._queue: deque[Call] = deque()
        self._tokens = itertools.count()
        self._wake = asyncio.Event()
        self._tg: TaskGroup | None = None

    def submit(self, payload: bytes) -> Call:
        """Queue one encoded input; await the returned call's ``future``."""
        call = Call(payload, asyncio.get_running_loop().create_future())
        self._queue.append(call)
        self._wake.set()
        return call

    def abandon(self, call: Call) -> None:
        """The caller was cancelled: have the actor kill the call's container, if it runs."""
        if call.where is not None:
            actor, token, index = call.where
            actor.cancels.setdefault(token, []).append(index)
            self._wake.set()

    def kick(self) -> None:
        """Dispatch again soon: an actor may have become routable, or room freed up."""
        self._wake.set()

    def fail_queued(self, error: Callable[[], ExecutorError]) -> None:
        """Fail every queued call, each with an error of its own (a shared exception object
        would collect every raiser's traceback)."""
        while self._queue:
            call = self._queue.popleft()
            if not call.future.done():
                call.future.set_exception(error())

    async def run(self) -> None:
        """Dispatch whenever woken, until cancelled."""
        self._client_mode = client_mode()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    self._dispatch()
        finally:
            self._tg = None

    # -- routing -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Send queued calls in chunks to actors with room; fail them if no actor is left."""
        assert self._tg is not None
        self._send_cancels()
        queue = self._queue
        actors = self._fleet.actors
        while queue:
            actor = self._pick(actors, avoid=queue[0].failed_on)
            if actor is None:
                break
            # Split what is queued evenly over the actors with room, so a small batch of
            # slow calls runs on every node instead of filling the first actor's window.
            with_room = sum(a.routable and a.in_flight <= self._low_water for a in actors)
            share = -(-len(queue) // max(with_room, 1))
            room = min(self._window - actor.in_flight, self._chunk_size, share)
            calls: list[Call] = []
            while queue and len(calls) < room:
                call = queue.popleft()
                if not call.future.done():
                    calls.append(call)
            if not calls:
                break
            actor.in_flight += len(calls)
            self._tg.start_soon(self._send, actor, calls)
        hope = (a.state == STARTING or a.in_flight or a.routable for a in actors)
        if queue and not any(hope):
            self.fail_queued(self._no_actor)

    def _pick(self, actors: list[Actor], avoid: Actor | None) -> Actor | None:
        """The least-loaded routable actor once its window drained to half; else a probe.

        ``avoid`` (the actor a retried call at the head of the queue failed on) is taken
        only when no other actor could take the call.
        """
        routable = [a for a in actors if a.routable]
        if routable:
            others = [a for a in routable if a is not avoid] or routable
            best = min(others, key=lambda a: a.in_flight)
            return best if best.in_flight <= self._low_water else None
        # Nothing routable: send one chunk at a time to the actor down longest (it may be
        # back); its failure fails the chunk instead of leaving the caller waiting.
        probes = [a for a in actors if a.state in (UP, DOWN)]
        if not probes or any(a.in_flight for a in probes):
            return None
        others = [a for a in probes if a is not avoid]
        return min(others or probes, key=lambda a: a.down_since or 0.0)

    def _no_actor(self) -> EngineUnavailable:
        fleet = self._fleet
        why = "; ".join(f"{a.name}: {a.last_error}" for a in fleet.actors if a.last_error)
        if fleet.cluster_error:
            why = f"{why}; the cluster: {fleet.cluster_error}" if why else fleet.cluster_error
        return unavailable(
            "no Ray actor of this executor is up to take the call"
            + (f" ({why})" if why else " (no node could take one)"),
            delivered=False,
        )

    # -- one chunk -----------------------------------------------------------------------------

    async def _send(self, actor: Actor, calls: list[Call]) -> None:
        """One chunk: ``accept`` (the delivery point), then ``run``'s results as they come."""
        ray = self._ray
        lost = (ray.exceptions.RayError, ChannelLost)
        token = next(self._tokens)
        pending = dict(enumerate(calls))
        accepted = False
        for index, call in pending.items():
            call.where = (actor, token, index)
            call.failed_on = None
            call.attempts += 1
        channel = actor.channel  # the chunk's results come back the way it went
        try:
            try:
                payloads = [c.payload for c in calls]
                if channel is not None:
                    await channel.accept(token, payloads)
                else:
                    await actor.handle.accept.remote(token, payloads)
            except lost as exc:
                # run() was never sent, so nothing of this chunk can have started.
                self._fleet.lost(actor, exc)
                retried = sum(self._retry(call, actor, exc) for call in calls)
                if retried:
                    events.calls_retried(actor, retried, describe(exc))
                pending.clear()
                return
            accepted = True
            actor.chunks += 1
            gone = [i for i, c in pending.items() if c.future.done()]
            if len(gone) == len(pending):
                if channel is not None:
                    channel.forget(token)
                self._cancel(actor, token)
                return
            if gone:
                actor.cancels.setdefault(token, []).extend(gone)
            timeout = self._timeout
            guard = math.inf if timeout is None else timeout + STREAM_GRACE
            try:
                with anyio.move_on_after(guard) as scope:
                    size = len(calls) - len(gone)
                    async for batch in self._results(actor, channel, token, size):
                        undelivered: ExecutorError | None = None
                        count = 0
                        for index, raw, meta in batch:
                            finished = pending.get(index)
                            if finished is not None:
                                del pending[index]
                                actor.in_flight -= 1
                                if not self._settle(finished, actor, raw, meta):
                                    undelivered = meta
                                    count += 1
                        if undelivered is not None:
                            events.calls_retried(
                                actor, count, undelivered.message, undelivered.code
                            )
                        self._wake.set()
            except lost as exc:
                self._fleet.lost(actor, exc)
                self._fail_lost(pending, actor, describe(exc))
            else:
                if scope.cancelled_caught:
                    self._fleet.down(actor, DOWN, f"a chunk got no result within {guard:g} s")
                    self._cancel(actor, token)
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
            self._wake.set()

    async def _results(
        self, actor: Actor, channel: Channel | None, token: int, size: int
    ) -> AsyncIterator[list[Result]]:
        """The chunk's results: over the data connection, in batches as they finish; as Ray
        calls, streamed in batches when the chunk may take a while, else (and over Ray
        Client, which has no streaming calls) all at once in one reply."""
        if channel is not None:
            async for batch in channel.results(token):
                yield batch
            return
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

    def _cancel(self, actor: Actor, token: int, indices: list[int] | None = None) -> None:
        """Have the actor cancel inputs of a chunk (all with ``None``), the cheapest way."""
        if actor.channel is not None:
            actor.channel.cancel(token, indices)
        elif actor.handle is not None:
            self._fire(actor.handle.cancel.remote(token, indices))

    def _send_cancels(self) -> None:
        for actor in self._fleet.actors:
            if actor.cancels and actor.state != DEAD:
                for token, indices in actor.cancels.items():
                    self._cancel(actor, token, indices)
            actor.cancels.clear()

    # -- outcomes ------------------------------------------------------------------------------

    def _settle(self, call: Call, actor: Actor, raw: bytes | None, meta: Any) -> bool:
        """Resolve one call from its result: output, error, or (False) a retry elsewhere."""
        call.where = None
        actor.calls += 1
        if call.future.done():  # the caller gave up (cancelled)
            return True
        if raw is not None:
            duration = meta[0]
            avg = actor.avg_call
            actor.avg_call = duration if avg is None else 0.8 * avg + 0.2 * duration
            call.future.set_result((raw, meta))
            return True
        error: ExecutorError = meta if meta is not None else WorkerLost("cancelled")
        if isinstance(error, EngineUnavailable):
            self._fleet.engine_down(actor, error)
        if getattr(error, "delivered", None) is False and call.attempts < 2:
            call.failed_on = actor
            self._queue.appendleft(call)
            return False
        call.future.set_exception(error)
        return True

    def _retry(self, call: Call, actor: Actor, exc: BaseException) -> bool:
        """Requeue an undelivered call once (True); a second failure is EngineUnavailable."""
        call.where = None
        actor.in_flight -= 1
        if call.future.done():
            return False
        if call.attempts < 2:
            call.failed_on = actor
            self._queue.appendleft(call)
            return True
        call.future.set_exception(
            unavailable(
                f"the call reached no Ray actor in {call.attempts} tries "
                f"(last: {actor.name}: {describe(exc)})",
                delivered=False,
            )
        )
        return False

    def _fail_lost(self, pending: dict[int, Call], actor: Actor, why: str) -> None:
        worker = f"{actor.node_id}/{actor.actor_id}"
        count = 0
        for call in pending.values():
            call.where = None
            if not call.future.done():
                count += 1
                call.future.set_exception(
                    WorkerLost(
                        f"the Ray actor ({actor.name}) was lost after the call was delivered "
                        f"({why}); it may have run, so it is not retried",
                        worker=worker,
                    )
                )
        actor.in_flight -= len(pending)
        pending.clear()
        if count:
            events.calls_lost(actor, count, why)


__all__ = ["Call", "Dispatcher"]
