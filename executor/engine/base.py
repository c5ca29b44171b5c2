"""The seam between the executor and a container engine: what a call needs, and images.

:class:`Engine` is what one call needs from an engine (create, attach, start, state, wait,
remove, list by label) plus a ping and a description; :class:`Images` is the image side
(exists, inspect, derive, copy between engines, build), reached as ``engine.images``. A new
engine kind (Podman's Docker API, a remote service, the in-memory
:class:`executor.testing.FakeEngine`) is a new pair of classes, not a branch in the executor.

Errors: implementations raise only :class:`~executor.ExecutorError` subclasses
(:class:`EngineUnavailable` when the engine cannot be reached or is going away,
:class:`EngineError` when it refuses a request, :class:`ImageNotFound`), translated at their
boundary with :func:`map_exceptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import anyio

from .._errors import ExecutorError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

__all__ = [
    "CLEANUP_TIMEOUT",
    "Attachment",
    "Engine",
    "EngineInfo",
    "ExitState",
    "Images",
    "cleanup",
    "map_exceptions",
    "shielded",
]

#: Bound on one cleanup step (kill, remove, close) after a failure or cancellation.
CLEANUP_TIMEOUT = 15.0


class ExitState(NamedTuple):
    """How a container ended (``running`` True: it has not; ``removed`` True: the engine no
    longer knows it, something else removed it)."""

    running: bool
    exit_code: int | None
    oom_killed: bool
    removed: bool = False


class EngineInfo(NamedTuple):
    """What an engine says about itself (``kind``: ``docker``, ``podman`` or ``fake``)."""

    name: str
    kind: str
    version: str
    api_version: str
    cpus: int
    runtimes: tuple[str, ...] = ()
    default_runtime: str = "runc"
    os: str = ""


class Attachment(ABC):
    """A container's stdin, stdout and stderr, attached before start."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Write to the container's stdin (buffered; never waits for the reader)."""

    @abstractmethod
    def close_stdin(self) -> None:
        """Half-close stdin (EOF for the process) and keep reading its output."""

    @abstractmethod
    def alive(self) -> bool:
        """False once the streams ended (the container exited or the engine went away)."""

    def unread(self) -> bool:
        """Whether bytes wait on the connection that the event loop has not read yet (a cheap
        poll, no await): an end of stream may be among them. False when it cannot tell."""
        return False

    @abstractmethod
    async def read(self) -> tuple[int, bytes] | None:
        """Next ``(stream, data)`` frame (1 = stdout, 2 = stderr), ``None`` at the end."""

    @abstractmethod
    async def close(self) -> None:
        """Drop the connection (never raises)."""


class Images(ABC):
    """The image side of an engine."""

    @abstractmethod
    async def inspect(self, ref: str) -> dict[str, Any] | None:
        """The engine's description of ``ref`` (``Id``, ``Config.Labels``, ...), None if absent."""

    async def exists(self, ref: str) -> bool:
        """Whether ``ref`` is present on the engine."""
        return await self.inspect(ref) is not None

    async def id(self, ref: str) -> str | None:
        """The content id of ``ref`` (``sha256:...``), None if absent."""
        info = await self.inspect(ref)
        return None if info is None else str(info.get("Id") or "") or None

    @abstractmethod
    async def list(self) -> list[dict[str, Any]]:
        """Every image (``Id``, ``RepoTags``, ``Labels``, ``Size``, ``Created``)."""

    @abstractmethod
    async def tag(self, ref: str, repository: str, tag: str) -> None:
        """Add the tag ``repository:tag`` to ``ref``."""

    @abstractmethod
    async def remove(self, ref: str) -> bool:
        """Remove ``ref`` (a tag: the image goes with its last tag), never forced.

        False when the engine refuses because a container (in any state) uses the image; an
        absent ``ref`` counts as removed.
        """

    @abstractmethod
    async def derive(
        self,
        image: str,
        files: Mapping[str, bytes],
        tag: str,
        labels: Mapping[str, str],
        more: Callable[[], Awaitable[Mapping[str, bytes]]] | None = None,
    ) -> None:
        """Create ``tag``: ``image`` plus ``files`` (path → content), config unchanged.

        ``more``, awaited once ``files`` are in, gives files still being made meanwhile (they
        win over ``files``): the engine copies the first part while the caller makes the rest.
        """

    @abstractmethod
    def export(self, ref: str) -> AsyncIterator[bytes]:
        """Stream ``ref`` as an image tar archive (``docker save``)."""

    @abstractmethod
    async def load(self, chunks: AsyncIterator[bytes]) -> None:
        """Load an image tar archive (``docker load``)."""

    @abstractmethod
    async def pull(self, ref: str) -> bool:
        """Try to pull ``ref``; False when it cannot be had (no registry, unknown image)."""

    @abstractmethod
    def build(
        self,
        context: bytes,
        *,
        tag: str,
        dockerfile: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        network: str | None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Build an image from a tar ``context``; yield the engine's progress objects."""


class Engine(ABC):
    """What a container call needs from an engine."""

    #: A short name for messages and metadata (e.g. the socket URL).
    name: str
    #: Relative capacity for routing over several engines (2.0: twice the calls in flight).
    capacity: float = 1.0

    @property
    @abstractmethod
    def images(self) -> Images:
        """The engine's image operations."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`EngineUnavailable` unless the engine answers."""

    @abstractmethod
    async def info(self) -> EngineInfo:
        """Describe the engine (kind, version, CPUs, runtimes)."""

    @abstractmethod
    async def create(self, body: Mapping[str, Any]) -> str:
        """Create a container from an Engine-API create body; return its id."""

    @abstractmethod
    async def attach(self, container_id: str) -> Attachment:
        """Attach stdin, stdout and stderr (call before :meth:`start`)."""

    @abstractmethod
    async def start(self, container_id: str) -> None:
        """Start a created container."""

    @abstractmethod
    async def state(self, container_id: str) -> ExitState:
        """Whether the container runs, and its exit code and OOM flag once it stopped.

        A container the engine does not know (removed) is ``ExitState(False, None, False,
        removed=True)``, not an error.
        """

    @abstractmethod
    async def wait(self, container_id: str) -> None:
        """Wait until the container has stopped (at once when the engine does not know it)."""

    @abstractmethod
    async def remove(self, container_id: str) -> None:
        """Kill (SIGKILL) and remove the container with its anonymous volumes (idempotent)."""

    @abstractmethod
    async def list_managed(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Containers carrying all the given labels (``Id``, ``Labels``, ``State``)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections (only those the engine object created). Idempotent; after it
        every call raises :class:`~executor.ExecutorClosed`."""

    def reconnect(self) -> Engine | None:
        """A new engine object for the same endpoint, usable from another thread and event
        loop (the process-wide sweeper's); None when this engine cannot be reached so."""
        return None


# --- helpers shared by every engine and by the executor ----------------------------------


@contextlib.contextmanager
def map_exceptions(
    table: Mapping[type[BaseException], Callable[[Any], ExecutorError | None]],
) -> Iterator[None]:
    """Translate foreign exceptions at a boundary, the way httpcore does.

    ``table`` maps an exception type to a function building the :class:`ExecutorError` to
    raise instead (``raise mapped from exc``); the first matching entry wins, in order. A
    function may return None to let the exception through. ExecutorErrors always pass.
    """
    try:
        yield
    except ExecutorError:
        raise
    except Exception as exc:
        for kind, translate in table.items():
            if isinstance(exc, kind):
                mapped = translate(exc)
                if mapped is not None:
                    raise mapped from exc
                break
        raise


T = TypeVar("T")


@contextlib.contextmanager
def shielded(timeout: float = CLEANUP_TIMEOUT) -> Iterator[anyio.CancelScope]:
    """A scope that outside anyio cancellation cannot interrupt, bounded by ``timeout``.

    An anyio shield does not stop asyncio's own ``task.cancel()`` (``asyncio.wait_for``,
    ``asyncio.timeout``, a ``TaskGroup``): for a step that must not be cut short (creating
    or removing a container) use :func:`protect`. Reaching the bound just leaves the block
    (check ``scope.cancelled_caught``).
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(timeout) as scope:
        yield scope


async def protect(
    step: Callable[..., Awaitable[T]],
    *args: Any,
    timeout: float = CLEANUP_TIMEOUT,  # noqa: ASYNC109 - a bound on the step, not the caller's
) -> T | None:
    """Run ``step(*args)`` to its end, whatever cancels the caller meanwhile; ``None`` if it
    took longer than ``timeout``. Its exceptions are raised here.

    The step runs in a task of its own, so neither an anyio scope nor asyncio's
    ``task.cancel()`` can cut it off halfway: a container create cancelled in flight still
    happens at the engine, and without its id nothing could remove the container (measured:
    ``asyncio.wait_for`` around calls left 12 of 40 containers behind with an anyio shield
    alone). A cancellation that arrives meanwhile is delivered again once the step is done.
    """

    async def bounded() -> T | None:
        with anyio.move_on_after(timeout):
            return await step(*args)
        return None

    task = asyncio.get_running_loop().create_task(bounded())
    me = asyncio.current_task()
    deferred: list[Any] = []
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError as exc:
                deferred.append(exc.args[0] if exc.args else None)
                if me is not None:
                    me.uncancel()
    if me is not None:
        # Each canceller counts its own (asyncio.timeout, a TaskGroup) and anyio knows its
        # own by the message: give each back as it came.
        for message in deferred:
            me.cancel(message)
    return task.result()


async def cleanup(
    step: Callable[..., Awaitable[Any]],
    *args: Any,
    timeout: float = CLEANUP_TIMEOUT,  # noqa: ASYNC109 - a bound on cleanup, not the caller's
) -> bool:
    """Run one cleanup step to its end (see :func:`protect`); never raises an ExecutorError.

    Returns whether it completed (False: the engine failed or did not answer in time; the
    executor's sweeps and ``reap()`` will find what is left).
    """
    try:
        done = await protect(_done, step, args, timeout=timeout)
    except ExecutorError:
        return False
    return done is True


async def _done(step: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> bool:
    await step(*args)
    return True
