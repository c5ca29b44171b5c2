"""A Docker engine (or Podman's Docker API) over aiodocker: the only module importing it.

Every aiodocker/aiohttp error is translated here, by one table (:data:`_ERRORS`), and every
workaround for aiodocker's private internals lives here too, next to the version range it was
tested on (:data:`TESTED_AIODOCKER`):

* attach: aiodocker's ``Stream`` is driven with our own attach URL (no extra inspect) and its
  transport is half-closed for EOF (``Stream.close()`` would end the whole attach); one that
  failed to open is marked closed by hand;
* raw requests through ``Docker._query``: ``POST /build`` (``images.build`` does not expose
  ``networkmode``), ``GET /_ping`` (no public call; its headers tell Podman apart),
  ``DELETE /containers/{id}`` (for Podman's ``timeout``), ``GET /events`` and
  ``GET /images/{ref}/get``; ``_query`` never releases its answer, so each goes through
  :func:`_answer`, which does (an answer left mid-stream would hold its connection until the
  garbage collector warns "Unclosed connection");
* engine discovery is aiodocker's own (``DOCKER_HOST``, Docker contexts, the usual socket
  paths); for a unix socket the client is then rebuilt with an unlimited connector, since every
  live attach holds a connection and aiohttp's default cap of 100 deadlocks a big pool;
* a server that is not a Docker Engine API: Docker and Podman send ``Api-Version`` with every
  answer, so :meth:`DockerEngine.ping` refuses an answer without it (or a 4xx) with
  ``EngineError`` saying what answered; aiodocker meets any other answer it cannot read (an
  HTML page, JSON without ``message``) with a bare ``TypeError``/``KeyError``/``ValueError``
  and leaves the response open: :func:`translate` maps those raised inside aiodocker to the
  same ``EngineError`` and closes the response (:func:`_raised_in_aiodocker`);
* Docker 20.10 can leave ``State.OOMKilled`` false after an OOM kill (containerd's OOM event
  reached the daemon after the exit event): :meth:`DockerEngine.state` then looks for the
  container's ``oom`` event in ``GET /events`` (:meth:`DockerEngine._oom_logged`).

Podman's Docker API (tested: Podman 4.3.1) differs as follows; each is handled here once
``GET /_ping`` has said the engine is Podman (its ``Libpod-Api-Version`` header):

* a create body's ``Ulimits`` *replace* Podman's configured defaults (``default_ulimits`` in
  containers.conf), where Docker merges them, and without defaults a rootful Podman asks runc
  for 1048576 open files and processes, which fails ("error setting rlimit type 7") where the
  engine lacks CAP_SYS_RESOURCE: :meth:`DockerEngine.create` merges the defaults back in
  (:func:`_merge_ulimits`);
* a forced removal sends SIGTERM and waits the stop timeout (10 s) before SIGKILL, where
  Docker kills at once: :meth:`DockerEngine.remove` passes ``timeout=0``, and asks again when
  Podman loses a race with the container's own exit ("container state improper");
* ``POST /commit`` without a body fails ("Decode(): EOF"): :meth:`_DockerImages.derive`
  sends an empty config;
* a ``seccomp=`` security option is read as a *path* on Podman's host, where Docker takes the
  profile's JSON itself: :meth:`DockerEngine.create` writes the profile to a file of this user's
  (:func:`_podman_seccomp`) and passes its path, which Podman can read when it runs on this
  machine (a unix socket);
* ``HostConfig.Runtime`` is ignored (the runtime is a setting of the Podman process): a
  container asking for another runtime than the default is refused with ``ConfigError``
  rather than silently run under the default (gVisor asked for, runc given);
* ``State.OOMKilled`` is never set (conmon 2.1.6): :meth:`DockerEngine.state` reads an OOM
  kill from the exit status and the memory limit instead (:func:`_podman_oom`);
* ``GET /version`` takes about 1 s (and ``GET /info`` 0.5-1 s): pings use ``/_ping``, whose
  headers also give the API version aiodocker would otherwise ask ``/version`` for, and one
  ``/info`` answer per engine is reused for a minute.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import io
import json
import os
import select
import tarfile
import tempfile
import time
from typing import TYPE_CHECKING, Any, cast

import aiodocker
import aiohttp
import anyio
from aiodocker.stream import Stream
from yarl import URL

from .._errors import (
    ConfigError,
    EngineError,
    EngineUnavailable,
    ExecutorClosed,
    ExecutorError,
    ImageNotFound,
)
from .._public import show_as_public
from .base import (
    Attachment,
    Engine,
    EngineInfo,
    ExitState,
    Images,
    map_exceptions,
    protect,
)
from .labels import MANAGED_LABEL, OWNER_LABEL, owner_id

if TYPE_CHECKING:
    import asyncio
    import ssl
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence

__all__ = ["TESTED_AIODOCKER", "DockerEngine", "translate"]

#: The aiodocker releases the private-internal workarounds below were tested with.
TESTED_AIODOCKER = "0.25.0 - 0.27.0"
#: Bound on creating or removing the scratch container of ``Images.derive``.
_HELPER_TIMEOUT = 15.0
#: Bound on pulling a base image while building (a registry-less host fails fast anyway).
_PULL_TIMEOUT = 300.0
#: How long one engine's ``GET /info`` answer is reused, per process: every executor asks it
#: once (its CPU count bounds concurrent starts), and Podman takes 0.5-1 s to answer it.
_INFO_TTL = 60.0
_info_cache: dict[str, tuple[float, dict[str, Any]]] = {}
#: Podman's default ulimits per engine address (see _merge_ulimits), kept as long.
_ulimits_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
#: How long past now Docker's event log is read for an OOM event that missed the flag.
_OOM_EVENT_WAIT = 1.0
#: How much longer the read may take: a busy daemon answers late, and the answer's own end
#: (``until``) bounds it on a local engine; this bounds it for a remote one whose clock is
#: behind.
_OOM_EVENT_SLACK = 4.0
#: A build's or an image export's answer streams for as long as the engine works on it.
_STREAMING = aiohttp.ClientTimeout(total=None, sock_read=None)
#: Removal attempts on Podman, which can refuse one racing with the container's own exit.
_REMOVE_ATTEMPTS = 3
#: aiodocker reports "cannot connect" as a DockerError with this pseudo status.
_CONNECT_FAILED = 900
#: Signs, in a 5xx message, that the engine (or its containerd) is failing or stopping rather
#: than refusing the request. "transport is closing: unavailable" is containerd's gRPC
#: connection going down during a dockerd shutdown (seen mid-call in tests/faults).
_GOING_AWAY = ("connection", "eof", "transport is closing", "unavailable")


def _check_internals() -> None:
    """Fail loudly, naming the tested range, if aiodocker's internals we rely on moved."""
    stream_attrs = Stream.__init__.__code__.co_names  # attributes __init__ assigns
    missing = [f"Stream.{n}" for n in ("_resp", "_queue", "_closed") if n not in stream_attrs]
    if not hasattr(aiodocker.Docker, "_query"):
        missing.append("Docker._query")
    if missing:
        raise ConfigError(
            f"aiodocker {aiodocker.__version__} lacks {', '.join(missing)}; executor's Docker "
            f"engine was tested with aiodocker {TESTED_AIODOCKER}: install one of those"
        )


def _ulimit_name(name: str) -> str:
    # Podman reports its own entries as RLIMIT_NOFILE; a create body names them nofile.
    return name.lower().removeprefix("rlimit_")


def _merge_ulimits(
    defaults: Sequence[Mapping[str, Any]], body: Mapping[str, Any]
) -> dict[str, Any]:
    """``body`` with the engine's default ulimits added under its own, as Docker does."""
    host = dict(body.get("HostConfig") or {})
    merged = {_ulimit_name(str(u["Name"])): dict(u) for u in defaults if u.get("Name")}
    for entry in host.get("Ulimits") or ():
        merged[_ulimit_name(str(entry["Name"]))] = dict(entry)
    host["Ulimits"] = [{**entry, "Name": name} for name, entry in merged.items()]
    return {**body, "HostConfig": host}


#: Profile files written for Podman, by content hash (see :func:`_podman_seccomp`).
_seccomp_files: dict[str, str] = {}


def _podman_seccomp(body: Mapping[str, Any], engine: str) -> Mapping[str, Any]:
    """``body`` with an inline ``seccomp=<json>`` option turned into a path for Podman.

    The file lives in a directory only this user may write (a profile someone else could edit
    would be no profile), named by the content's hash, and is rewritten when it went missing.
    Podman reads it on its own host: that is this machine only for a unix socket.
    """
    host = body.get("HostConfig") or {}
    options = list(host.get("SecurityOpt") or ())
    inline = [i for i, option in enumerate(options) if option.startswith("seccomp={")]
    if not inline:
        return body
    if not engine.startswith("unix://"):
        raise ConfigError(
            f"the Podman engine at {engine} reads a seccomp profile from a path on its own host, "
            "so the library's profile cannot reach it over the network; use "
            "ContainerConfig(seccomp=PATH) with a profile installed on that host (its path "
            "must exist here too), or seccomp='engine' for Podman's own default"
        )
    for i in inline:
        options[i] = f"seccomp={_profile_file(options[i][len('seccomp=') :])}"
    return {**body, "HostConfig": {**host, "SecurityOpt": options}}


def _profile_file(profile: str) -> str:
    digest = hashlib.sha256(profile.encode()).hexdigest()[:32]
    path = _seccomp_files.get(digest)
    if path is not None and os.path.exists(path):
        return path
    folder = os.path.join(tempfile.gettempdir(), f"executor-seccomp-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    found = os.lstat(folder)
    if (
        not os.path.isdir(folder)
        or os.path.islink(folder)
        or found.st_uid != os.getuid()
        or (found.st_mode & 0o022)
    ):
        raise ConfigError(
            f"{folder} (where the seccomp profile for Podman is written) is not a directory "
            "that only this user may write; remove it and try again"
        )
    path = os.path.join(folder, f"{digest}.json")
    fd, partial = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(profile)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    _seccomp_files[digest] = path
    return path


def _unflagged_kill(info: Mapping[str, Any]) -> bool:
    """A stopped container whose PID 1 ended by SIGKILL (137) under a memory limit."""
    state, host = info.get("State") or {}, info.get("HostConfig") or {}
    return not state.get("Running") and state.get("ExitCode") == 137 and bool(host.get("Memory"))


def _unix_seconds(stamp: str) -> int | None:
    """Whole seconds since the epoch of an engine's RFC 3339 UTC time stamp, or ``None``."""
    try:
        return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _podman_oom(info: Mapping[str, Any]) -> bool:
    """Whether a Podman container's end was an OOM kill, read from its exit status and limit.

    Podman 4.3 never sets ``OOMKilled`` here (conmon 2.1.6 writes its OOM marker into the
    service's working directory), and the container's memory cgroup, whose counters would
    say, is gone once it exited. What is left: PID 1 ended by SIGKILL (status 137) under a
    memory limit. Nothing inside the container can send its PID 1 a SIGKILL (the kernel drops
    signals to a namespace's init that it has no handler for), so that is the kernel's OOM
    killer, or a kill from outside: ``podman kill``/``stop`` or a removal while it ran (this
    executor's own kills, at a timeout or cancellation, never ask why). Not read as one when an
    init process is PID 1: there a task's own SIGKILL also ends the container with 137, so with
    ``init=True`` an OOM kill on Podman is ``EXIT_NONZERO`` (Docker says ``OOM_KILLED``).
    """
    if not _unflagged_kill(info):
        return False
    host = info.get("HostConfig") or {}
    pid1 = str(info.get("Path") or "").rsplit("/", 1)[-1]
    return not (host.get("Init") or pid1 in ("catatonit", "tini") or pid1.endswith("-init"))


def translate(
    engine: str, *, image: str | None = None
) -> Mapping[type[BaseException], Callable[[Any], ExecutorError | None]]:
    """The exception table for one engine request (see :func:`map_exceptions`)."""

    def docker_error(exc: aiodocker.DockerError) -> ExecutorError:
        message = str(exc.message)
        lowered = message.lower()
        if exc.status == _CONNECT_FAILED:
            return EngineUnavailable(
                f"cannot reach the Docker engine at {engine}: {message}.", engine=engine
            )
        if exc.status == 404 and image is not None and "image" in lowered:
            return ImageNotFound(image, engine=engine)
        if exc.status >= 500 and any(sign in lowered for sign in _GOING_AWAY):
            return EngineUnavailable(f"the engine at {engine} failed: {message}.", engine=engine)
        return EngineError(
            f"the engine at {engine} refused the request ({exc.status}): {message}",
            status=exc.status,
            engine=engine,
        )

    def lost(exc: BaseException) -> ExecutorError:
        return EngineUnavailable(
            f"lost the connection to the Docker engine at {engine}: {exc!r}.", engine=engine
        )

    def odd(exc: BaseException) -> ExecutorError | None:
        # aiodocker reads an answer it cannot parse (an HTML page, JSON without "message")
        # with a bare TypeError/KeyError/ValueError; one raised in our own code is a bug.
        if not _raised_in_aiodocker(exc):
            return None
        return _not_docker(engine, f"an answer aiodocker could not read ({exc!r})")

    return {
        aiodocker.DockerError: docker_error,
        TimeoutError: lost,
        aiohttp.ClientError: lost,
        ConnectionError: lost,
        OSError: lost,
        TypeError: odd,
        KeyError: odd,
        ValueError: odd,
    }


def _raised_in_aiodocker(exc: BaseException) -> bool:
    """Whether aiodocker raised ``exc`` (an error or a cancellation) reading an answer; the
    answer is then closed, which aiodocker does not do (its connection would stay taken until
    the garbage collector warns "Unclosed connection")."""
    inside = False
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if str(frame.f_globals.get("__name__", "")).startswith("aiodocker."):
            inside = True
            for value in frame.f_locals.values():
                if isinstance(value, aiohttp.ClientResponse):
                    value.close()
        tb = tb.tb_next
    return inside


def _not_docker(engine: str, answer: str, *, status: int | None = None) -> EngineError:
    """The error for a server that answers HTTP but not as a Docker Engine API."""
    return EngineError(
        f"the server at {engine} is not a Docker Engine API: it gave {answer}. Check DOCKER_HOST "
        "(and `docker context ls`), or the engine's URL: it must name a Docker engine or "
        "Podman's API service, e.g. unix:///var/run/docker.sock",
        status=status,
        engine=engine,
    )


def _mapping(value: Any, request: str, engine: str) -> dict[str, Any]:
    """An engine's JSON object answer, or the error saying the server is no Docker API."""
    if not isinstance(value, dict):
        raise _not_docker(engine, f"{type(value).__name__} {str(value)[:80]!r} to {request}")
    return value


class _DockerAttachment(Attachment):
    __slots__ = ("_stream",)

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def _transport(self) -> asyncio.Transport | None:
        resp = self._stream._resp
        connection = resp.connection if resp is not None else None
        return connection.transport if connection is not None else None

    async def write(self, data: bytes) -> None:
        # Buffered, not drained: a container may write (a stderr flood, say) before reading
        # all of stdin, and waiting for the drain before reading its output would deadlock.
        # A closed attach is not an error here: the container stopped reading, and the end
        # of its output and its exit status say why.
        transport = self._transport()
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def close_stdin(self) -> None:
        transport = self._transport()
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    def alive(self) -> bool:
        stream = self._stream
        queue = stream._queue
        if queue is None or stream._resp is None or stream._closed or queue.is_eof():
            return False
        transport = self._transport()
        return transport is not None and not transport.is_closing()

    def unread(self) -> bool:
        transport = self._transport()
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return False
        poller = select.poll()
        try:
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):  # closed meanwhile: the loop will see it
            return True

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
        with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
            await self._stream.close()
        # Abort, not just close: a transport still holding unsent stdin would stay open until
        # the container read it, and the engine cannot finish killing a container whose
        # attach stream is still open and unread.
        if transport is not None:
            transport.abort()


@contextlib.asynccontextmanager
async def _answer(
    client: aiodocker.Docker, path: str, method: str = "GET", **kwargs: Any
) -> AsyncIterator[aiohttp.ClientResponse]:
    """A raw request through ``Docker._query``, its answer released on leaving, however left.

    aiodocker's ``_query`` hands the answer over and never releases it: one left before its
    end (a build stream on its error line, an event stream once the event is found, any
    cancellation) would hold its connection until the garbage collector warns "Unclosed
    connection", maybe in another task or after the loop closed. Releasing an answer read to
    its end returns the connection to the pool; one left unread is closed.
    """
    async with client._query(path, method, **kwargs) as response:
        try:
            yield response
        finally:
            response.release()


async def _delete(container: Any) -> None:
    """Remove a helper container (and its anonymous volumes), running or not."""
    await container.delete(force=True, v=True)


def _tar(files: Mapping[str, bytes]) -> bytes:
    """``files`` as a tar archive for ``PUT /containers/{id}/archive``, ending right after its
    two end-of-archive blocks: without tarfile's padding to a 10 KiB record. Podman's copier
    (buildah's ``copierWithSubprocess``, containers/buildah#6573) stops reading at the end
    marker and closes its pipe; trailing padding still being written then fails the request
    with 500 "passing bulk input to subprocess: write |1: broken pipe" (seen in CI)."""
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
    # After close(), ``offset`` counts the members and the two zero blocks, not the padding.
    return buf.getvalue()[: tar.offset]


class _DockerImages(Images):
    def __init__(self, engine: DockerEngine) -> None:
        self._engine = engine

    async def inspect(self, ref: str) -> dict[str, Any] | None:
        with self._engine.errors():
            try:
                info = await (await self._engine.connected()).images.inspect(ref)
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return None
                raise
        return _mapping(info, f"inspecting image {ref}", self._engine.name)

    async def list(self) -> list[dict[str, Any]]:
        with self._engine.errors():
            found = await (await self._engine.connected()).images.list()
        return [dict(image) for image in found]

    async def tag(self, ref: str, repository: str, tag: str) -> None:
        with self._engine.errors(image=ref):
            await (await self._engine.connected()).images.tag(ref, repository, tag=tag)

    async def remove(self, ref: str) -> bool:
        with self._engine.errors():
            try:
                await (await self._engine.connected()).images.delete(ref)
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return True
                if exc.status == 409:  # Docker and Podman: a container uses it
                    return False
                raise
        return True

    async def derive(
        self,
        image: str,
        files: Mapping[str, bytes],
        tag: str,
        labels: Mapping[str, str],
        more: Callable[[], Awaitable[Mapping[str, bytes]]] | None = None,
    ) -> None:
        client = await self._engine.connected()
        with self._engine.errors(image=image):
            # A stopped, writable scratch container: copy the files in and commit it. Creating
            # and deleting it are protected (and bounded): a call timing out or cancelled while
            # the image is derived must not leave the helper behind.
            config = {
                "Image": image,
                "Labels": {**labels, MANAGED_LABEL: "true", OWNER_LABEL: owner_id()},
            }
            helper = await protect(client.containers.create, config, timeout=_HELPER_TIMEOUT)
            if helper is None:
                raise TimeoutError("the engine did not create the image's scratch container")
            try:
                # A file object, not bytes: aiohttp warns (ResourceWarning) on a large bytes
                # body, and a dependencies image's files are tens of MB.
                # Made in a thread: tens of MB would hold up the event loop.
                archive = io.BytesIO(await anyio.to_thread.run_sync(_tar, files))
                await cast("Any", helper).put_archive("/", archive)  # untyped in aiodocker
                if more is not None and (rest := await more()):
                    archive = io.BytesIO(await anyio.to_thread.run_sync(_tar, rest))
                    await cast("Any", helper).put_archive("/", archive)
                repository, _, version = tag.rpartition(":")
                # An empty config changes nothing on Docker; Podman cannot commit without one.
                await helper.commit(repository=repository, tag=version, config={}, pause=False)
            finally:
                await protect(_delete, helper, timeout=_HELPER_TIMEOUT)

    async def export(self, ref: str) -> AsyncIterator[bytes]:
        with self._engine.errors(image=ref):
            async with _answer(
                await self._engine.connected(), f"images/{ref}/get", timeout=_STREAMING
            ) as response:
                while chunk := await response.content.read(1 << 20):
                    yield chunk

    async def load(self, chunks: AsyncIterator[bytes]) -> None:
        with self._engine.errors():
            await (await self._engine.connected()).images.import_image(data=chunks)

    async def pull(self, ref: str) -> bool:
        try:
            with self._engine.errors(), anyio.fail_after(_PULL_TIMEOUT):
                await (await self._engine.connected()).images.pull(ref)
        except (ExecutorError, TimeoutError):
            return False
        return await self.exists(ref)

    async def build(
        self,
        context: bytes,
        *,
        tag: str,
        dockerfile: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        network: str | None,
    ) -> AsyncIterator[dict[str, Any]]:
        # POST /build directly: aiodocker's images.build does not expose networkmode.
        params = {
            "t": tag,
            "dockerfile": dockerfile,
            "rm": "1",
            "forcerm": "1",
            "buildargs": json.dumps(dict(buildargs)),
            "labels": json.dumps(dict(labels)),
        }
        if network is not None:
            params["networkmode"] = network
        headers = {"content-type": "application/x-tar", "Content-Encoding": "identity"}
        with self._engine.errors():
            async with _answer(
                await self._engine.connected(),
                "build",
                "POST",
                params=params,
                data=context,
                headers=headers,
                timeout=_STREAMING,
            ) as response:
                pending = b""
                async for data in response.content.iter_any():
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip() and isinstance(decoded := json.loads(line), dict):
                            yield decoded
                if pending.strip() and isinstance(decoded := json.loads(pending), dict):
                    yield decoded


class DockerEngine(Engine):
    """A Docker engine reached through aiodocker.

    ``url`` is a Docker host (``unix:///var/run/docker.sock``, ``tcp://host:2376``,
    ``ssh://...``); ``None`` defers to aiodocker's discovery (``DOCKER_HOST``, the current
    Docker context, the usual socket paths). A ``docker`` client passed in is shared and not
    closed here; otherwise one is created lazily inside the running event loop and closed by
    :meth:`aclose`, after which the engine refuses further requests.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        docker: aiodocker.Docker | None = None,
        ssl_context: ssl.SSLContext | None = None,
        name: str | None = None,
        capacity: float = 1.0,
    ) -> None:
        self._url = url
        self._docker = docker
        self._ssl = ssl_context
        self._owns_client = docker is None
        self._closed = False
        self._given_name = name
        self._discovered: str | None = None
        self._spare: aiodocker.Docker | None = None
        self._connector: aiohttp.BaseConnector | None = None
        self._kind: str | None = None
        self._api_version: str | None = None
        self._probe_lock: anyio.Lock | None = None  # made inside the loop that uses it
        self.capacity = capacity
        self._images = _DockerImages(self)
        #: The engine's address: as given, else as discovered on first use.
        self.name = name or url or os.environ.get("DOCKER_HOST") or "the default Docker engine"

    @property
    def images(self) -> Images:
        return self._images

    @contextlib.contextmanager
    def errors(self, *, image: str | None = None) -> Iterator[None]:
        """The error translation for one request to this engine; whatever leaves the request
        (an error, a cancellation) closes the answer aiodocker was reading, which it never
        releases itself (its connection would stay taken until the garbage collector warns)."""
        try:
            with map_exceptions(translate(self.name, image=image)):
                yield
        except BaseException as exc:
            _raised_in_aiodocker(exc.__cause__ or exc)
            raise

    def client(self) -> aiodocker.Docker:
        """The aiodocker client (created on first use, inside the running loop)."""
        if self._closed:
            raise ExecutorClosed(f"the engine client for {self.name} is closed")
        if self._docker is None:
            self._docker = self._connect()
        return self._docker

    def _connect(self) -> aiodocker.Docker:
        # Connecting may not hang: an unreachable engine fails within seconds.
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
        try:
            docker = aiodocker.Docker(url=self._url, timeout=timeout, ssl_context=self._ssl)
        except (ValueError, OSError) as exc:
            raise EngineUnavailable(f"no Docker engine found ({exc}).", engine=self.name) from exc
        host = str(getattr(docker, "_connection_info", None) or docker.docker_host)
        self._discovered = host
        if self._given_name is None and self._url is None:
            self.name = host
        if host.startswith("unix://"):
            # Every live attach holds a connection; aiohttp's default cap of 100 would
            # deadlock a pool or batch holding 100 of them. Unix sockets cost nothing.
            connector = aiohttp.UnixConnector(host[len("unix://") :], limit=0)
            old = docker
            docker = aiodocker.Docker(url=host, connector=connector, timeout=timeout)
            # aiodocker rewrites the host for URL building only with its own connector.
            docker.docker_host = "unix://localhost"
            self._spare = old  # never used; closed with us
            self._connector = connector  # ours: aiodocker closes only connectors it made
        return docker

    def reconnect(self) -> Engine | None:
        url = self._url or self._discovered
        if url is None:
            return None
        return DockerEngine(url, ssl_context=self._ssl, name=self.name, capacity=self.capacity)

    async def connected(self) -> aiodocker.Docker:
        """The client, once one ``GET /_ping`` has told the engine's kind and API version."""
        client = self.client()
        if self._kind is None:
            await self.ping()
        return client

    async def ping(self) -> None:
        # Unversioned GET /_ping, never /version: Podman answers /version only after asking
        # conmon and the OCI runtime for theirs (about 1 s), and aiodocker's "auto" API version
        # costs one /version per client. The ping's headers give both the engine's kind and
        # its API version, which spares aiodocker that request.
        # Docker and Podman send Api-Version with every answer: a server without it is some
        # other HTTP server, and aiodocker would fail on its next answer with a bare TypeError.
        client = self.client()
        with self.errors():
            try:
                async with _answer(client, "_ping", versioned_api=False) as response:
                    headers = response.headers
                    api = headers.get("Api-Version")
                    if not api:
                        kind = headers.get("Content-Type", "no Content-Type")
                        body = (await response.content.read(80)).decode("utf-8", "replace")
                        answer = (
                            f"HTTP {response.status} ({kind}, {body!r}) to GET /_ping, without "
                            "the Api-Version header that Docker and Podman send"
                        )
                        raise _not_docker(self.name, answer, status=response.status)
            except aiodocker.DockerError as exc:
                if not 400 <= exc.status < 500:
                    raise
                answer = f"HTTP {exc.status} ({str(exc.message)[:80]!r}) to GET /_ping"
                raise _not_docker(self.name, answer, status=exc.status) from exc
        self._kind = "podman" if "Libpod-Api-Version" in headers else "docker"
        self._api_version = api
        if client.api_version == "auto":
            client.api_version = f"v{api}"

    async def info(self) -> EngineInfo:
        await self.ping()  # the engine answers now; its kind and API version, fresh
        key = self._discovered or self.name
        cached = _info_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < _INFO_TTL:
            info = cached[1]
        else:
            with self.errors():
                answer = await (await self.connected()).system.info()
            info = _mapping(answer, "GET /info", self.name)
            _info_cache[key] = (time.monotonic(), info)
        return EngineInfo(
            name=self.name,
            kind=self._kind or "docker",
            version=str(info.get("ServerVersion") or "?"),
            api_version=self._api_version or "?",
            cpus=int(info.get("NCPU") or 0) or (os.cpu_count() or 1),
            runtimes=tuple(sorted((info.get("Runtimes") or {}).keys())),
            default_runtime=str(info.get("DefaultRuntime") or "runc"),
            os=str(info.get("OperatingSystem") or ""),
        )

    async def kind(self) -> str:
        """``docker`` or ``podman`` (asked once; see the module docstring for what differs)."""
        if self._kind is None:
            await self.ping()
        assert self._kind is not None
        return self._kind

    async def create(self, body: Mapping[str, Any]) -> str:
        if await self.kind() == "podman":
            body = _podman_seccomp(body, self._discovered or self._url or self.name)
            runtime = (body.get("HostConfig") or {}).get("Runtime")
            if runtime and runtime != (await self.info()).default_runtime:
                raise ConfigError(
                    f"runtime={runtime!r} cannot be chosen through Podman's Docker API: Podman "
                    "4.3 ignores HostConfig.Runtime and would run the container under its "
                    "default runtime; start the Podman service with `podman --runtime "
                    f"{runtime} system service` and leave runtime unset, or use Docker"
                )
        if await self.kind() == "podman" and (body.get("HostConfig") or {}).get("Ulimits"):
            body = _merge_ulimits(await self._default_ulimits(str(body["Image"])), body)
        with self.errors(image=str(body.get("Image"))):
            container = await (await self.connected()).containers.create(config=dict(body))
            return str(container.id)

    async def _default_ulimits(self, image: str) -> list[dict[str, Any]]:
        """Podman's default ulimits: those of a container created (never started) without any.

        Read once per engine address and process (for :data:`_INFO_TTL` seconds).
        """
        key = self._discovered or self.name
        cached = _ulimits_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < _INFO_TTL:
            return cached[1]
        if self._probe_lock is None:
            self._probe_lock = anyio.Lock()
        async with self._probe_lock:
            cached = _ulimits_cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < _INFO_TTL:
                return cached[1]
            client = await self.connected()
            labels = {MANAGED_LABEL: "true", OWNER_LABEL: owner_id()}
            with self.errors(image=image):
                config = {"Image": image, "Labels": labels}
                probe = await protect(client.containers.create, config, timeout=_HELPER_TIMEOUT)
                if probe is None:
                    raise TimeoutError("the engine did not create the probe container")
                try:
                    shown = await probe.show()
                finally:
                    await protect(_delete, probe, timeout=_HELPER_TIMEOUT)
            found = (shown.get("HostConfig") or {}).get("Ulimits") or []
            ulimits = [dict(u) for u in found if isinstance(u, dict)]
            _ulimits_cache[key] = (time.monotonic(), ulimits)
            return ulimits

    async def attach(self, container_id: str) -> Attachment:
        query = URL(f"containers/{container_id}/attach").with_query(
            {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 0, "detachKeys": ""}
        )

        async def setup() -> tuple[URL, bytes | None, bool]:
            return query, None, False  # Tty is always false: stdout and stderr stay apart

        stream = Stream(await self.connected(), setup, None)
        try:
            with self.errors():
                await stream.__aenter__()
        except BaseException:
            # Failed or cancelled half-way: release the response if there was one, and mark
            # the stream closed (aiodocker 0.25-0.26 warn "Unclosed ExecStream" otherwise).
            if stream._resp is not None:
                stream._resp.close()
            stream._closed = True
            raise
        return _DockerAttachment(stream)

    async def start(self, container_id: str) -> None:
        with self.errors():
            await (await self.connected()).containers.container(container_id).start()

    async def state(self, container_id: str) -> ExitState:
        with self.errors():
            try:
                info = await (await self.connected()).containers.container(container_id).show()
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return ExitState(running=False, exit_code=None, oom_killed=False, removed=True)
                raise
        state = info.get("State", {})
        running = bool(state.get("Running"))
        oom = bool(state.get("OOMKilled")) or (self._kind == "podman" and _podman_oom(info))
        if not oom and self._kind == "docker" and _unflagged_kill(info):
            oom = await self._oom_logged(container_id, info)
        return ExitState(
            running=running,
            exit_code=None if running else state.get("ExitCode"),
            oom_killed=oom,
        )

    async def _oom_logged(self, container_id: str, info: Mapping[str, Any]) -> bool:
        """Whether Docker's event log shows an OOM kill that ``State.OOMKilled`` missed.

        Docker 20.10 sets the flag from containerd's OOM event only when that event reaches
        the daemon before the exit event; under load it can arrive after, and the flag stays
        false for good while the ``oom`` event is still logged. The log is read from the
        container's start until shortly after now (so an OOM event still on its way counts),
        bounded for an engine whose clock runs behind. No event, no OOM: a kill from outside
        (``docker kill``, the host) also ends a container with 137.
        """
        started = _unix_seconds(str((info.get("State") or {}).get("StartedAt") or ""))
        if started is None:
            return False
        params = {
            "since": str(started - 1),
            "until": f"{time.time() + _OOM_EVENT_WAIT:.3f}",
            "filters": json.dumps({"container": [container_id], "type": ["container"]}),
        }
        client = await self.connected()
        with anyio.move_on_after(_OOM_EVENT_WAIT + _OOM_EVENT_SLACK), self.errors():
            async with _answer(client, "events", params=params) as response:
                async for line in response.content:
                    with contextlib.suppress(ValueError, AttributeError):
                        if json.loads(line).get("Action") == "oom":
                            return True
        return False

    async def wait(self, container_id: str) -> None:
        with self.errors():
            try:
                await (await self.connected()).containers.container(container_id).wait()
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise

    async def remove(self, container_id: str) -> None:
        params: dict[str, Any] = {"force": True, "v": True}
        podman = await self.kind() == "podman"
        if podman:
            # Podman's forced removal stops the container first, SIGTERM then SIGKILL after its
            # stop timeout (10 s); Docker's kills at once. timeout=0 asks Podman for the same.
            params["timeout"] = 0
        client = await self.connected()
        for attempt in range(_REMOVE_ATTEMPTS if podman else 1):
            with self.errors():
                try:
                    # Docker._query: DockerContainer.delete in aiodocker 0.27 takes no params
                    # beyond force, v and link.
                    async with _answer(
                        client, f"containers/{container_id}", "DELETE", params=params
                    ):
                        return
                except aiodocker.DockerError as exc:
                    if exc.status == 404:
                        return  # already gone
                    if exc.status == 409 and "in progress" in str(exc.message):
                        return  # another removal of it is running
                    # Podman 4.3 loses a race with a container exiting on its own while it
                    # kills it: "could not be stopped: sending SIGKILL ...: container state
                    # improper: stopped". The container is stopped now; ask again.
                    if not (podman and "state improper" in str(exc.message)):
                        raise
                    if attempt == _REMOVE_ATTEMPTS - 1:
                        raise
            await anyio.sleep(0.05)

    async def list_managed(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        labels = [f"{k}={v}" if v else k for k, v in filters.items()]
        client = await self.connected()
        with self.errors():
            found = await client.containers.list(all=True, filters={"label": labels})
        # DockerContainer keeps the list entry in a private attribute; its public accessors
        # would each cost an inspect request.
        return [dict(c._container) for c in found]

    async def aclose(self) -> None:
        self._closed = True
        docker, self._docker = self._docker, None
        spare, self._spare = self._spare, None
        for client in (docker if self._owns_client else None, spare):
            if client is not None:
                await client.close()
        connector, self._connector = self._connector, None
        if connector is not None:
            await connector.close()


_check_internals()


# Public as executor.engine.DockerEngine, however it was first imported.
show_as_public(DockerEngine, "executor.engine")
