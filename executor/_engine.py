"""The narrow seam between the container executor and a container engine.

:class:`Engine` is everything the executor needs from an engine; :class:`DockerEngine`
implements it over the Docker Engine API with aiodocker. A second engine kind (another
runtime, a Kubernetes backend) is a new class here, not a branch in the executor.

Every aiodocker/aiohttp error is translated at this boundary (:func:`engine_errors`):
nothing foreign escapes.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import aiodocker
import aiohttp
import anyio
from aiodocker.stream import Stream
from yarl import URL

from ._errors import EngineUnavailable, ExecutorError, ImageNotFound

if TYPE_CHECKING:
    import asyncio
    import ssl
    from collections.abc import AsyncIterator, Iterator, Mapping

__all__ = [
    "INSTANCE_LABEL",
    "MANAGED_LABEL",
    "OWNER_LABEL",
    "Attachment",
    "DockerEngine",
    "Engine",
    "ExitState",
]

_DEFAULT_SOCKET = "/var/run/docker.sock"
MANAGED_LABEL = "executor.managed"
OWNER_LABEL = "executor.owner"
#: Unique per executor object: lets it find its own containers after an engine failure.
INSTANCE_LABEL = "executor.instance"
_START_TICKS: str | None = None
#: Bound on creating or removing the scratch container of derive_image().
_HELPER_TIMEOUT = 15.0


def _process_start_ticks(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell pid reuse apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so split after its ")".
    return stat.rsplit(b")", 1)[1].split()[19].decode()


def owner_id() -> str:
    """This process's owner label: ``host/pid/start``, unique across pid reuse."""
    global _START_TICKS
    if _START_TICKS is None:
        _START_TICKS = _process_start_ticks(os.getpid()) or str(int(time.time()))
    return f"{socket.gethostname()}/{os.getpid()}/{_START_TICKS}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by an owner label still runs (True if not on this host)."""
    try:
        host, pid_text, ticks = owner.split("/")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # cannot tell for another host: leave it alone
    return _process_start_ticks(pid) == ticks


class ExitState(NamedTuple):
    """How a container ended."""

    running: bool
    exit_code: int | None
    oom_killed: bool


class Attachment(ABC):
    """A container's stdin/stdout/stderr, attached before start."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Write to the container's stdin."""

    @abstractmethod
    def close_stdin(self) -> None:
        """Half-close stdin (EOF for the process) and keep reading its output."""

    @abstractmethod
    def alive(self) -> bool:
        """False once the streams ended (the container exited or the engine went away)."""

    @abstractmethod
    async def read(self) -> tuple[int, bytes] | None:
        """Next ``(stream, data)`` frame (1 = stdout, 2 = stderr), ``None`` at the end."""

    @abstractmethod
    async def close(self) -> None:
        """Drop the connection."""


class Engine(ABC):
    """What the container executor needs from an engine."""

    #: A short name for messages and metadata (e.g. the socket URL).
    name: str

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`EngineUnavailable` unless the engine answers."""

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
        """Whether the container runs, and its exit code and OOM flag once it stopped."""

    @abstractmethod
    async def wait(self, container_id: str) -> None:
        """Wait until the container has stopped."""

    @abstractmethod
    async def remove(self, container_id: str) -> None:
        """Kill (SIGKILL) and remove the container with its anonymous volumes."""

    @abstractmethod
    async def image_exists(self, image: str) -> bool:
        """Whether the image is present on the engine."""

    async def image_id(self, image: str) -> str | None:
        """The content id of ``image`` (``sha256:...``), or None when the engine cannot tell."""
        return None

    @abstractmethod
    async def derive_image(
        self, image: str, files: Mapping[str, bytes], tag: str, labels: Mapping[str, str]
    ) -> None:
        """Create ``tag``: ``image`` plus ``files`` (path → content), config unchanged."""

    @abstractmethod
    def export_image(self, image: str) -> AsyncIterator[bytes]:
        """Stream ``image`` as a tar archive (``docker save``)."""

    @abstractmethod
    async def load_image(self, chunks: AsyncIterator[bytes]) -> None:
        """Load an image tar archive (``docker load``)."""

    @abstractmethod
    async def list_managed(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Containers carrying all the given labels (``Id``, ``Labels``, ``State``)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections (only those the engine object created)."""


#: Signs, in a 5xx message, that the engine (or its containerd) is failing or stopping rather
#: than refusing the request. "transport is closing: unavailable" is containerd's gRPC
#: connection going down during a dockerd shutdown (seen mid-call in tests/faults).
_GOING_AWAY = ("connection", "eof", "transport is closing", "unavailable")


@contextlib.contextmanager
def engine_errors(engine: str, *, image: str | None = None) -> Iterator[None]:
    """Translate aiodocker/aiohttp/OS errors into :class:`ExecutorError` subclasses."""
    try:
        yield
    except ExecutorError:
        raise
    except aiodocker.DockerError as exc:
        message = str(exc.message)
        if exc.status == 900:
            raise EngineUnavailable(
                f"cannot reach the Docker engine at {engine}: {message}.", engine=engine
            ) from exc
        if exc.status == 404 and image is not None and "image" in message.lower():
            raise ImageNotFound(image, engine=engine) from exc
        if exc.status >= 500 and any(sign in message.lower() for sign in _GOING_AWAY):
            raise EngineUnavailable(
                f"the engine at {engine} failed: {message}.", engine=engine
            ) from exc
        raise ExecutorError(
            f"the Docker engine at {engine} refused the request ({exc.status}): {message}",
            code="ENGINE_ERROR",
        ) from exc
    except (TimeoutError, aiohttp.ClientError, ConnectionError, OSError) as exc:
        raise EngineUnavailable(
            f"lost the connection to the Docker engine at {engine}: {exc!r}.", engine=engine
        ) from exc


class _DockerAttachment(Attachment):
    __slots__ = ("_stream",)

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    async def write(self, data: bytes) -> None:
        # Buffered, not drained: a container may write (a stderr flood, say) before reading
        # all of stdin, and waiting for the drain before reading its output would deadlock.
        # A closed attach is not an error here: the container stopped reading, and the end
        # of its output and its exit status say why.
        transport = self._transport()
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _transport(self) -> asyncio.Transport | None:
        resp = self._stream._resp
        connection = resp.connection if resp is not None else None
        transport = connection.transport if connection is not None else None
        return transport

    def close_stdin(self) -> None:
        # Stream.close() would end the whole attach; half-close the socket instead.
        resp = self._stream._resp
        transport = resp.connection.transport if resp and resp.connection else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    def alive(self) -> bool:
        stream = self._stream
        queue, resp = stream._queue, stream._resp
        if queue is None or resp is None or stream._closed or queue.is_eof():
            return False
        transport = resp.connection.transport if resp.connection else None
        return transport is not None and not transport.is_closing()

    async def read(self) -> tuple[int, bytes] | None:
        try:
            message = await self._stream.read_out()
        except (aiohttp.ClientError, ConnectionError):
            # The connection broke (e.g. the container exited with stdin unread): the streams
            # ended. The caller inspects the container next, which reports a lost engine.
            return None
        if message is None:
            return None
        return message.stream, message.data

    async def close(self) -> None:
        transport = self._transport()
        await self._stream.close()
        # Abort, not just close: a transport still holding unsent stdin would stay open until
        # the container read it, and the engine cannot finish killing a container whose
        # attach stream is still open and unread.
        if transport is not None:
            transport.abort()


def _tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()
        for path, content in sorted(files.items()):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


class DockerEngine(Engine):
    """A Docker engine reached through aiodocker.

    ``url`` is a Docker host (``unix:///var/run/docker.sock``, ``tcp://host:2376``); ``None``
    means ``DOCKER_HOST`` or the default socket. A ``docker`` client passed in is shared and
    not closed here; otherwise one is created lazily inside the running event loop.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        docker: aiodocker.Docker | None = None,
        ssl_context: ssl.SSLContext | None = None,
        name: str | None = None,
    ) -> None:
        self._url = url
        self._docker = docker
        self._ssl = ssl_context
        self._connector: aiohttp.BaseConnector | None = None
        self._owns_client = docker is None
        self.name = name or url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def client(self) -> aiodocker.Docker:
        """The aiodocker client (created on first use, inside the running loop)."""
        return self._client()

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            try:
                # Connecting may not hang: an unreachable engine fails within seconds.
                timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
                url = self._url or os.environ.get("DOCKER_HOST")
                if url is None and os.path.exists(_DEFAULT_SOCKET):
                    url = f"unix://{_DEFAULT_SOCKET}"
                if url is not None and url.startswith("unix://"):
                    # Every live attach holds a connection; aiohttp's default cap of 100 would
                    # deadlock a pool or batch holding 100 of them. Unix sockets cost nothing.
                    self._connector = aiohttp.UnixConnector(url[len("unix://") :], limit=0)
                self._docker = aiodocker.Docker(
                    url=url, connector=self._connector, timeout=timeout, ssl_context=self._ssl
                )
                if self._connector is not None:
                    # aiodocker rewrites the host for URL building only with its own connector.
                    self._docker.docker_host = "unix://localhost"
            except (ValueError, OSError) as exc:
                raise EngineUnavailable(
                    f"no Docker engine found ({exc}).", engine=self.name
                ) from exc
        return self._docker

    def errors(self, *, image: str | None = None) -> contextlib.AbstractContextManager[None]:
        """Error translation for this engine."""
        return engine_errors(self.name, image=image)

    async def ping(self) -> None:
        with self.errors():
            await self._client().version()

    async def create(self, body: Mapping[str, Any]) -> str:
        with self.errors(image=str(body.get("Image"))):
            container = await self._client().containers.create(config=dict(body))
            return str(container.id)

    async def attach(self, container_id: str) -> Attachment:
        query = URL(f"containers/{container_id}/attach").with_query(
            {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 0, "detachKeys": ""}
        )

        async def setup() -> tuple[URL, bytes | None, bool]:
            return query, None, False  # Tty is always false: stdout and stderr stay apart

        stream = Stream(self._client(), setup, None)
        with self.errors():
            await stream.__aenter__()
        return _DockerAttachment(stream)

    async def start(self, container_id: str) -> None:
        with self.errors():
            await self._client().containers.container(container_id).start()

    async def state(self, container_id: str) -> ExitState:
        with self.errors():
            info = await self._client().containers.container(container_id).show()
        state = info.get("State", {})
        running = bool(state.get("Running"))
        return ExitState(
            running=running,
            exit_code=None if running else state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
        )

    async def wait(self, container_id: str) -> None:
        with self.errors():
            await self._client().containers.container(container_id).wait()

    async def remove(self, container_id: str) -> None:
        with self.errors():
            try:
                await self._client().containers.container(container_id).delete(force=True, v=True)
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return  # already gone
                if exc.status == 409 and "in progress" in str(exc.message):
                    return  # another removal of it is running
                raise

    async def image_exists(self, image: str) -> bool:
        with self.errors():
            try:
                await self._client().images.inspect(image)
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return False
                raise
            return True

    async def image_id(self, image: str) -> str | None:
        with self.errors(image=image):
            info = await self._client().images.inspect(image)
        return str(info["Id"])

    async def derive_image(
        self, image: str, files: Mapping[str, bytes], tag: str, labels: Mapping[str, str]
    ) -> None:
        client = self._client()
        with self.errors(image=image):
            # A stopped, writable scratch container: copy the files in and commit it. Creating
            # and deleting it are shielded (and bounded): a call timing out or cancelled while
            # the image is derived must not leave the helper behind.
            with anyio.CancelScope(shield=True), anyio.fail_after(_HELPER_TIMEOUT):
                helper = await client.containers.create(
                    config={
                        "Image": image,
                        "Labels": {**labels, MANAGED_LABEL: "true", OWNER_LABEL: owner_id()},
                    }
                )
            try:
                await cast("Any", helper).put_archive("/", _tar(files))  # untyped in aiodocker
                repository, _, version = tag.rpartition(":")
                await helper.commit(repository=repository, tag=version, pause=False)
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(_HELPER_TIMEOUT):
                    await helper.delete(force=True, v=True)

    async def export_image(self, image: str) -> AsyncIterator[bytes]:
        with self.errors(image=image):
            async with self._client().images.export_image(image) as reader:
                while chunk := await reader.read(1 << 20):
                    yield chunk

    async def load_image(self, chunks: AsyncIterator[bytes]) -> None:
        with self.errors():
            await self._client().images.import_image(data=chunks)

    async def list_managed(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        labels = [f"{k}={v}" if v else k for k, v in filters.items()]
        with self.errors():
            found = await self._client().containers.list(all=True, filters={"label": labels})
        return [dict(c._container) for c in found]

    async def aclose(self) -> None:
        if self._owns_client and self._docker is not None:
            docker, self._docker = self._docker, None
            await docker.close()
        connector, self._connector = self._connector, None
        if connector is not None:
            await connector.close()  # ours: aiodocker closes only connectors it made
