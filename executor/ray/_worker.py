"""The node side of :class:`~executor.ray.RayExecutor`: one Ray actor per placement.

A :class:`NodeWorker` owns one :class:`~executor.ContainerExecutor` built from the caller's
config inside the actor's process, so it talks to the engine of the node it runs on (that
node's ``DOCKER_HOST``, else the default socket). It never validates: the caller sends
inputs already converted, validated and encoded as JSON, and gets each output back as the raw
JSON the runner wrote, to decode into its own type.

A chunk travels in two calls, and that split is what lets the caller tell delivered inputs
from undelivered ones when the actor dies::

    accept(token, payloads)   store the chunk; nothing runs yet. The caller records the
                              chunk as delivered only once this call has returned.
    run(token)                a streaming generator: start every input of the chunk at once,
                              yield lists of finished results as they come
    run_all(token)            the same, all results in one reply (a quick chunk; Ray Client)

Unless the caller reaches it only through Ray (Ray Client, ``data_channel=False``, a
firewall), the same two steps travel over a connection of its own to the actor instead of
Ray calls: see :mod:`executor.ray._channel`.

If the actor dies before ``accept`` returned, no input of the chunk can have run (``run`` was
not sent yet), so the caller may send them elsewhere. After that, a missing result is
reported as :class:`~executor.WorkerLost`, never retried.

Only this module's class runs on the nodes; it imports the public API of ``executor`` and
needs ``ray`` only for the node id.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .._errors import EngineUnavailable, ExecutorError, InfrastructureError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .. import ContainerConfig, ContainerExecutor

#: A finished input: ``(index in chunk, raw output JSON, meta)`` on success, where meta is
#: ``(duration, timings, logs, logs_truncated, container_id, exit_code, image, engine)``;
#: ``(index, None, error)`` on failure.
Result = tuple[int, bytes | None, Any]

#: Results finishing within this long of the first one go back in the same message: each
#: streamed message costs Ray 0.5-1 ms of CPU, so at 5 ms a busy actor spent more on messages
#: than on calls (433 vs 843 calls/s for 50 ms in bench/ray.py). A chunk whose calls are all
#: done goes back at once: only partial results of a chunk wait, at most this long.
COALESCE = 0.05
#: How long an engine probe may take before the engine counts as down.
PROBE_TIMEOUT = 5.0
#: A label no container carries: ``reap()`` filtered by it is a cheap engine ping.
_PROBE_LABEL = {"executor.ray-probe": "none"}


class NodeWorker:
    """One actor: a :class:`ContainerExecutor` on this node's engine, fed chunks of inputs."""

    def __init__(self, config: ContainerConfig, secret: bytes | None = None) -> None:
        self._config = config
        self._secret = secret
        self._server: asyncio.Server | None = None
        self._executor: ContainerExecutor[Any, msgspec.Raw] | None = None
        self._accepted: dict[int, list[bytes | None]] = {}
        self._running: dict[int, list[asyncio.Task[None]]] = {}
        self.calls = 0
        # A pool that makes calls wait for a container (on_empty="wait") wakes every waiter
        # whenever one frees up: with a Ray window far above `containers` that cost more CPU
        # than the calls (101k wake-ups for 3000 calls, window 128, 4 workers). Calls beyond
        # what the pool serves at once wait here instead, woken one at a time.
        self._gate: asyncio.Semaphore | None = None
        self._gate_size = (
            config.containers if config.containers and config.on_empty == "wait" else None
        )

    async def start(self) -> dict[str, Any]:
        """Build and enter the executor (reaping what a dead predecessor left); describe it."""
        from .. import ContainerExecutor

        if self._gate_size:
            self._gate = asyncio.Semaphore(self._gate_size)
        executor: ContainerExecutor[Any, msgspec.Raw] = ContainerExecutor(
            self._config, input_type=Any, output_type=msgspec.Raw
        )
        engine_up = True
        try:
            await executor.__aenter__()
        except EngineUnavailable:  # prewarm found no engine: report it, a probe retries
            engine_up = False
        self._executor = executor
        import ray

        context = ray.get_runtime_context()
        channel = None
        if self._secret is not None:
            from ._channel import serve

            host = ray.util.get_node_ip_address()
            try:
                self._server = await serve(self, self._secret, host)
            except OSError:  # cannot listen there: the caller uses Ray calls
                self._server = None
            else:
                channel = (host, self._server.sockets[0].getsockname()[1])
        return {
            "channel": channel,
            "node_id": context.get_node_id(),
            "actor_id": context.get_actor_id(),
            "engine": ",".join(str(s["engine"]) for s in executor.engines),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "engine_up": engine_up and await self.probe(),
        }

    async def probe(self) -> bool:
        """Whether the engine answers (a list call filtered to nothing; bounded)."""
        if self._config.engines:
            # Several engines: the executor pings them itself and routes around the dead.
            return self._executor is not None and any(s["up"] for s in self._executor.engines)
        from .. import reap

        with anyio.move_on_after(PROBE_TIMEOUT):
            try:
                await reap(docker_url=self._config.docker_url, labels=_PROBE_LABEL)
            except ExecutorError:
                return False
            return True
        return False

    async def accept(self, token: int, payloads: list[bytes | None]) -> None:
        """Hold a chunk until :meth:`run` starts it (see the module docstring)."""
        self._accepted[token] = payloads

    def drop(self, token: int) -> None:
        """Forget an accepted chunk that was not started (its caller is gone)."""
        self._accepted.pop(token, None)

    async def run(self, token: int, coalesce: float = COALESCE) -> AsyncIterator[list[Result]]:
        """Run every input of an accepted chunk concurrently; yield results in batches (those
        finishing within ``coalesce`` seconds of the first of a batch)."""
        payloads = self._accepted.pop(token, None)
        if not payloads:
            return
        executor = self._executor
        assert executor is not None, "start() runs first"
        done: list[Result] = []
        ready = asyncio.Event()
        gate = self._gate

        async def one(index: int, payload: bytes | None) -> None:
            result: Result = (index, None, None)  # None: cancelled by the caller
            try:
                if payload is not None:
                    if gate is None:
                        result = await _call(executor, index, payload)
                    else:
                        async with gate:
                            result = await _call(executor, index, payload)
            finally:
                done.append(result)
                ready.set()

        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(one(i, p)) for i, p in enumerate(payloads)]
        self._running[token] = tasks
        remaining = len(tasks)
        try:
            while remaining:
                await ready.wait()
                with anyio.move_on_after(coalesce):
                    while len(done) < remaining:
                        ready.clear()
                        await ready.wait()
                batch, done[:] = done[:], []
                ready.clear()
                remaining -= len(batch)
                self.calls += len(batch)
                yield batch
        finally:
            self._running.pop(token, None)
            for task in tasks:
                task.cancel()

    async def run_all(self, token: int) -> list[Result]:
        """:meth:`run` as one list, for Ray Client, which cannot stream."""
        return [result async for batch in self.run(token) for result in batch]

    async def cancel(self, token: int, indices: list[int] | None = None) -> None:
        """Cancel inputs of a chunk (all with ``None``): their containers are killed."""
        if indices is None:  # accepted, not started: never will be
            self._accepted.pop(token, None)
        elif (held := self._accepted.get(token)) is not None:  # run() will skip these
            for index in indices:
                held[index] = None
        for index, task in enumerate(self._running.get(token, ())):
            if indices is None or index in indices:
                task.cancel()

    async def status(self) -> dict[str, Any]:
        """Calls served, inputs running and held, the executor's engine view."""
        return {
            "calls": self.calls,
            "running": sum(not t.done() for ts in self._running.values() for t in ts),
            "held": sum(p is not None for ps in self._accepted.values() for p in ps),
            "engines": self._executor.engines if self._executor is not None else [],
        }

    async def close(self) -> None:
        """Cancel what runs and close the executor (idle pooled containers removed)."""
        for tasks in self._running.values():
            for task in tasks:
                task.cancel()
        self._accepted.clear()
        if self._server is not None:
            self._server.close()
        executor, self._executor = self._executor, None
        if executor is not None:
            await executor.aclose()


async def _call(
    executor: ContainerExecutor[Any, msgspec.Raw], index: int, payload: bytes
) -> Result:
    """One input through the executor, as a :data:`Result`; never raises an ExecutorError."""
    try:
        ex = await executor.run(msgspec.Raw(payload))
    except ExecutorError as exc:
        return index, None, exc
    except Exception as exc:  # a bug here must not take the chunk's other results with it
        return index, None, InfrastructureError(f"the Ray worker failed the call: {exc!r}")
    meta = (
        ex.duration,
        ex.timings,
        ex.logs,
        ex.logs_truncated,
        ex.container_id,
        ex.exit_code,
        ex.image,
        ex.engine,
    )
    return index, bytes(ex.output), meta


__all__ = ["NodeWorker", "Result"]
