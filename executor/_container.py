"""``ContainerExecutor``: run each call in a locked-down container, over the engine seam.

The life of one call (fresh mode)::

    coerce input ─► encode request ─► create ─► attach ─► start ─► write request, EOF
      ─► read frames (stdout → response, capped; stderr → logs, capped)
      ─► response complete? decode + validate output : inspect exit → ContainerFailed/ProtocolError
      ─► remove (background inside ``async with``, inline otherwise; shielded on any failure)

The warm pool and reusable workers (:mod:`executor._pool`) reuse the same :class:`Container`
handle and :func:`exchange`; only where the container comes from and where it goes differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar

import anyio
import msgspec

from ._base import Execution, Executor, resolve_types
from ._engine import INSTANCE_LABEL, MANAGED_LABEL, OWNER_LABEL, Attachment, Engine, owner_id
from ._engines import EngineEndpoint, EngineSlot, NotDelivered, choose, make_slots
from ._errors import (
    ConfigError,
    ContainerFailed,
    EngineUnavailable,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorError,
    ImageNotFound,
    OutputTooLarge,
    ProtocolError,
)
from ._schema import Codec, SchemaSource
from .protocol import ErrorInfo, decode_response_raw

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import aiodocker
    from anyio.abc import TaskGroup

    from ._pool import Pool

A = TypeVar("A")
B = TypeVar("B")

MiB = 1024 * 1024
_perf = time.perf_counter
_encode = msgspec.json.Encoder().encode
#: Bound on cleanup after a failure or cancellation: the engine gets this long to remove.
CLEANUP_TIMEOUT = 15.0
#: How long a single-use container may take to end its streams after answering (logs). The
#: runner exits at once, but on a loaded host (load 29 on 2 cores) that took over 0.5 s.
_LINGER = 2.0
_LINGER_MARGIN = 0.05
#: Re-inspections (0.1 s apart) of a container killed by SIGKILL without the OOM flag.
_OOM_FLAG_LOOKS = 10
#: Extra time allowed for the final inspection of a container that died without answering.
_INSPECT_GRACE = 5.0


class _RequestHead(msgspec.Struct, array_like=False):
    schema_in: msgspec.Raw
    schema_out: msgspec.Raw
    input: Any
    log_marker: str


class Outgoing(NamedTuple):
    """One encoded request and the log marker it carries (see :func:`exchange`)."""

    data: bytes
    marker: bytes


@dataclass(frozen=True, kw_only=True)
class ContainerConfig:
    """Settings of a :class:`ContainerExecutor`: secure by default, every relaxation opt-in.

    Sizes are bytes, times seconds. ``files`` maps absolute container paths to contents placed
    in the image before any call (a derived image is built once and cached by content hash;
    the root filesystem stays read-only). ``mounts`` are bind mounts ``"host:container"``
    (read-only unless ``":rw"`` is appended). ``pool_size > 0`` keeps that many containers
    started and waiting (each still serves one call); ``reuse=True`` runs the runner's serve
    mode and lets one container serve up to ``max_uses`` calls, one at a time, so state can
    leak between calls: use it only for trusted code. ``reap_on_start=True`` makes
    ``async with`` first remove the containers of dead processes that carry ``labels``
    (see :func:`executor.reap`): what a SIGKILLed predecessor left behind.
    """

    image: str = field(kw_only=False)
    command: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    mounts: Sequence[str] = ()
    # -- isolation --------------------------------------------------------------------------
    network: bool = False
    read_only: bool = True
    tmpfs_bytes: int = 64 * MiB
    user: str = "1000:1000"
    memory_bytes: int = 256 * MiB
    cpus: float = 1.0
    pids_limit: int = 128
    runtime: str | None = None
    init: bool = False
    # -- limits ------------------------------------------------------------------------------
    timeout: float | None = 30.0
    max_output_bytes: int = 16 * MiB
    max_log_bytes: int = 1 * MiB
    # -- schemas -----------------------------------------------------------------------------
    schema_in: SchemaSource = None
    schema_out: SchemaSource = None
    validate: bool = True
    # -- engine ------------------------------------------------------------------------------
    docker: aiodocker.Docker | None = field(default=None, compare=False, repr=False)
    docker_url: str | None = None
    engines: Sequence[str | EngineEndpoint] = ()
    missing_image: Literal["error", "copy", "build"] = "error"
    health_interval: float = 2.0
    labels: Mapping[str, str] = field(default_factory=dict)
    reap_on_start: bool = False
    # -- pool and reuse ----------------------------------------------------------------------
    pool_size: int = 0
    prewarm: bool = False
    max_idle: float | None = 300.0
    on_empty: Literal["start", "wait"] = "start"
    reuse: bool = False
    max_uses: int = 100

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"ContainerConfig.{what}")

        if not isinstance(self.image, str) or not self.image:
            raise bad(f"image must be a non-empty image name, got {self.image!r}")
        for name in (
            "memory_bytes",
            "pids_limit",
            "max_output_bytes",
            "max_log_bytes",
            "tmpfs_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise bad(f"{name} must be a positive integer, got {value!r}")
        if self.memory_bytes < 6 * MiB:
            raise bad(f"memory_bytes must be at least 6 MiB, got {self.memory_bytes}")
        if not (isinstance(self.cpus, int | float) and 0 < self.cpus <= 1024):
            raise bad(f"cpus must be a positive number, got {self.cpus!r}")
        if self.timeout is not None and not (
            isinstance(self.timeout, int | float)
            and self.timeout > 0
            and math.isfinite(self.timeout)
        ):
            raise bad(f"timeout must be a positive number of seconds or None, got {self.timeout!r}")
        if not isinstance(self.pool_size, int) or self.pool_size < 0:
            raise bad(f"pool_size must be a non-negative integer, got {self.pool_size!r}")
        if not isinstance(self.max_uses, int) or self.max_uses < 1:
            raise bad(f"max_uses must be a positive integer, got {self.max_uses!r}")
        if self.missing_image not in ("error", "copy", "build"):
            raise bad(
                f"missing_image must be 'error', 'copy' or 'build', got {self.missing_image!r}"
            )
        if not (isinstance(self.health_interval, int | float) and self.health_interval > 0):
            raise bad(f"health_interval must be positive seconds, got {self.health_interval!r}")
        if self.on_empty not in ("start", "wait"):
            raise bad(f"on_empty must be 'start' or 'wait', got {self.on_empty!r}")
        if self.max_idle is not None and not self.max_idle > 0:
            raise bad(f"max_idle must be positive seconds or None, got {self.max_idle!r}")
        for path in self.files:
            if not path.startswith("/") or path.endswith("/"):
                raise bad(f"files keys must be absolute file paths, got {path!r}")
        for mount in self.mounts:
            parts = mount.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
                raise bad(f"mounts entries must be 'host:/container[:ro|rw]', got {mount!r}")
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise bad(f"mount mode must be 'ro' or 'rw', got {mount!r}")


def create_body(config: ContainerConfig, image: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The Engine-API create body for ``config``: built once per executor, reused per call."""
    env = [f"{k}={v}" for k, v in config.env.items()]
    if config.reuse:
        env.append("EXECUTOR_SERVE=1")
    binds = []
    for mount in config.mounts:
        parts = mount.split(":")
        mode = parts[2] if len(parts) == 3 else "ro"
        binds.append(f"{parts[0]}:{parts[1]}:{mode}")
    host: dict[str, Any] = {
        "NetworkMode": "bridge" if config.network else "none",
        "ReadonlyRootfs": config.read_only,
        "Memory": config.memory_bytes,
        "MemorySwap": config.memory_bytes,  # swap equal to memory: no swap at all
        "NanoCpus": int(config.cpus * 1e9),
        "PidsLimit": config.pids_limit,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "Tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={config.tmpfs_bytes},mode=1777"},
        "ShmSize": min(config.tmpfs_bytes, 64 * MiB),
        "IpcMode": "private",
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "Init": config.init,
        # stdout/stderr reach us through the attach; a log driver would also copy every byte
        # (a 1 GB flood included) to disk inside the daemon.
        "LogConfig": {"Type": "none", "Config": {}},
        "Binds": binds,
    }
    if config.runtime:
        host["Runtime"] = config.runtime
    body: dict[str, Any] = {
        "Image": image,
        "User": config.user,
        "Env": env,
        "Labels": {**config.labels, **labels},
        "OpenStdin": True,
        "StdinOnce": True,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "NetworkDisabled": not config.network,
        "HostConfig": host,
    }
    if config.command is not None:
        body["Cmd"] = list(config.command)
    if config.entrypoint is not None:
        body["Entrypoint"] = list(config.entrypoint)
    if config.workdir:
        body["WorkingDir"] = config.workdir
    return body


@dataclass(slots=True)
class Container:
    """A created, attached and started container, ready for a request."""

    id: str
    engine: Engine
    attachment: Attachment
    started_at: float = field(default_factory=time.monotonic)
    uses: int = 0
    timings: dict[str, float] = field(default_factory=dict)


async def launch(engine: Engine, body: Mapping[str, Any]) -> Container:
    """Create, attach and start a container; on any failure remove what was made."""
    t0 = _perf()
    # Shielded: a create cancelled in flight may still happen at the engine, and without its
    # id nothing could remove the container. Bounded, so a hung engine cannot hold us forever.
    container_id: str | None = None
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
        container_id = await engine.create(body)
    if container_id is None:
        raise EngineUnavailable(
            f"the engine did not create the container within {CLEANUP_TIMEOUT:g} s.",
            engine=engine.name,
        )
    try:
        t1 = _perf()
        attachment = await engine.attach(container_id)
        t2 = _perf()
        try:
            await engine.start(container_id)
        except BaseException:
            await attachment.close()
            raise
        t3 = _perf()
    except BaseException:
        await remove_quietly(engine, container_id)
        raise
    return Container(
        container_id,
        engine,
        attachment,
        timings={"create": t1 - t0, "attach": t2 - t1, "start": t3 - t2},
    )


async def remove_quietly(engine: Engine, container_id: str) -> bool:
    """Remove a container, shielded from cancellation and bounded; never raises.

    Returns whether the removal went through (False: the engine failed; `reap()` will find it).
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
        try:
            await engine.remove(container_id)
        except ExecutorError:
            return False
        return True
    return False


@dataclass(slots=True)
class Reply:
    """What came back from one exchange."""

    stdout: bytes
    logs: str
    logs_truncated: bool
    ended: bool  # the output streams ended (the container is exiting)
    #: The response, when exchange() already decoded it and stdout holds nothing else.
    response: Decoded | None = None


#: A decoded response: ``(ok, output as raw JSON, error)``.
Decoded = tuple[bool, msgspec.Raw, ErrorInfo | None]


def _first_line(stdout: bytearray) -> Decoded | None:
    """The response on stdout's first line, once that line is complete and decodes."""
    end = stdout.find(b"\n")
    if end < 0:
        return None
    try:
        return decode_response_raw(bytes(stdout[:end]))
    except ProtocolError:
        return None


async def exchange(
    container: Container,
    payload: Outgoing,
    *,
    max_output_bytes: int,
    max_log_bytes: int,
    close_stdin: bool,
) -> Reply:
    """Write one request and read until its response is complete or the streams end.

    Raises :class:`OutputTooLarge` when stdout passes ``max_output_bytes`` (the caller kills
    the container). Stderr beyond ``max_log_bytes`` is dropped and flagged.
    """
    attachment = container.attachment
    await attachment.write(payload.data)
    if close_stdin:
        attachment.close_stdin()
    stdout = bytearray()
    logs = bytearray()
    truncated = False
    ended = True
    first_line_seen = False
    response: Decoded | None = None
    marker = payload.marker
    marker_seen = False
    tail = b""

    def log(data: bytes) -> None:
        nonlocal logs, truncated, marker_seen, tail
        if marker and not marker_seen:
            # Seen even when the logs are full and the bytes are dropped (a stderr flood).
            if marker in data or marker in tail + data[: len(marker)]:
                marker_seen = True
            else:
                tail = data[-len(marker) :]
        room = max_log_bytes - len(logs)
        if len(data) > room:
            truncated = True
            data = data[: max(room, 0)]
        logs += data

    while (frame := await attachment.read()) is not None:
        stream, data = frame
        if stream == 2:
            log(data)
            continue
        stdout += data
        if len(stdout) > max_output_bytes:
            raise OutputTooLarge(max_output_bytes)
        if not first_line_seen and b"\n" in data:
            # The first line is final once its newline arrives: decode it once. Re-decoding
            # it at every later newline let a runner (a long line, then newlines one by one)
            # hold the event loop for seconds, past the call's timeout.
            response = _first_line(stdout)
            if response is not None:
                ended = False
                break
            first_line_seen = True
    if ended:
        return Reply(bytes(stdout), logs.decode("utf-8", "replace"), truncated, ended)
    # The engine copies stdout and stderr through separate pipes, so stderr written before
    # the response can arrive after it. A runner that echoes our log marker wrote that marker
    # to stderr before answering: read stderr up to it (usually already here), no more.
    # Otherwise a single-use runner is about to exit: read on to the end of its streams.
    # Both waits are bounded, and never run into the call's deadline: the answer is in.
    marked = bool(marker) and stdout.rstrip().endswith(b'"log_marker":"' + marker + b'"}')
    if marked or close_stdin:
        now = anyio.current_time()
        until = min(now + _LINGER, anyio.current_effective_deadline() - _LINGER_MARGIN)
        with anyio.CancelScope(deadline=max(until, now)):
            while not (marked and marker_seen):
                frame = await attachment.read()
                if frame is None:
                    ended = True  # the streams ended: the container has exited
                    break
                if frame[0] == 2:
                    log(frame[1])
    if marked:
        _strip_marker(logs, marker)
    if stdout[stdout.find(b"\n") + 1 :].strip():
        response = None  # bytes after the line: interpret() judges the whole stdout
    return Reply(bytes(stdout), logs.decode("utf-8", "replace"), truncated, ended, response)


def _strip_marker(logs: bytearray, marker: bytes) -> None:
    """Cut the marker line (and anything after it, a child's late writes) from the logs."""
    at = logs.rfind(marker)
    if at >= 0:
        del logs[at:]


def _files_digest(image_id: str, files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256(image_id.encode())
    for path in sorted(files):
        h.update(b"\0" + path.encode() + b"\0")
        h.update(hashlib.sha256(files[path]).digest())
    return h.hexdigest()[:20]


class ContainerExecutor(Executor[A, B], Generic[A, B]):
    """Run each call in a fresh, locked-down container (or a warm/reused one, see the config).

    Created anywhere (no event loop needed); engine clients are made lazily inside the
    running loop and closed by :meth:`aclose`. Use it as ``async with`` so that container
    removal, pool refills and engine health checks run in the background and are awaited on
    exit. With ``engines=[...]`` calls are spread over several engines (see
    :mod:`executor._engines`).
    """

    def __init__(
        self,
        config: ContainerConfig,
        *,
        input_type: Any = None,
        output_type: Any = None,
        engine: Engine | None = None,
        _types: tuple[Any, Any] | None = None,
    ) -> None:
        if not isinstance(config, ContainerConfig):
            raise ConfigError(f"config must be a ContainerConfig, got {type(config).__name__}")
        self.config = config
        self.input_type, self.output_type = resolve_types(
            type(self), _types, input_type, output_type
        )
        self._in: Codec[A] = Codec(
            self.input_type, config.schema_in, which="in", validate=config.validate
        )
        self._out: Codec[B] = Codec(
            self.output_type, config.schema_out, which="out", validate=config.validate
        )
        self._slots = make_slots(
            config.engines, docker_url=config.docker_url, docker=config.docker, engine=engine
        )
        self._labels = {
            MANAGED_LABEL: "true",
            OWNER_LABEL: owner_id(),
            INSTANCE_LABEL: uuid.uuid4().hex,
        }
        self._files = {
            path: content.encode() if isinstance(content, str) else bytes(content)
            for path, content in config.files.items()
        }
        self._tg: TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False
        self._closing = anyio.Event()
        self._pooled = bool(config.pool_size or config.reuse)
        self._schemas = (self._in.schema_json, self._out.schema_json)

    # -- set-up --------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The (first) engine this executor runs containers on."""
        return self._slots[0].engine

    @property
    def engines(self) -> list[dict[str, Any]]:
        """Per-engine status: name, up, calls in flight and served, capacity, idle pooled."""
        return [slot.status() for slot in self._slots]

    @property
    def _pool(self) -> Pool | None:
        """The first engine's pool (most executors have one engine)."""
        return self._slots[0].pool

    @property
    def labels(self) -> dict[str, str]:
        """The labels every container of this executor carries."""
        return {**self.config.labels, **self._labels}

    async def _ready(self, slot: EngineSlot | None = None) -> dict[str, Any]:
        """Check the image on an engine (and derive the files image) once; the create body."""
        slot = slot or self._slots[0]
        body = slot.body
        if body is not None:
            return body
        async with slot.lock:
            if slot.body is not None:
                return slot.body
            if self._closed:
                raise ExecutorError("the executor is closed; create a new one", code="CLOSED")
            image = self.config.image
            if not await slot.engine.image_exists(image):
                await self._provide_image(slot, image)
            if self._files:
                image = await self._derived_image(slot.engine, image)
            slot.body = create_body(self.config, image, self._labels)
            return slot.body

    async def _provide_image(self, slot: EngineSlot, image: str) -> None:
        """Copy or build a missing image on ``slot`` as configured, else ImageNotFound."""
        policy = self.config.missing_image
        if policy == "copy":
            for other in self._slots:
                if other is not slot and other.up and await other.engine.image_exists(image):
                    await slot.engine.load_image(other.engine.export_image(image))
                    return
        elif policy == "build":
            from ._images import build_for_image

            if await build_for_image(image, slot.engine):
                return
        raise ImageNotFound(image, engine=slot.name, hint=_build_hint(image))

    async def _derived_image(self, engine: Engine, image: str) -> str:
        # Keyed by the base image's id, not its name: a rebuilt base (a runner fix, a security
        # update) under the same tag must not keep serving the derived image of the old one.
        digest = _files_digest(await engine.image_id(image) or image, self._files)
        tag = f"executor-files/{digest}:latest"
        if not await engine.image_exists(tag):
            await engine.derive_image(image, self._files, tag, {"executor.files-of": image})
        return tag

    async def _start_background(self) -> None:
        """Start the task that owns background work: removals, pool refills, health pings.

        A task of its own, not a task group entered here: ``aclose()`` may then run in any
        task (pytest-asyncio runs a fixture's set-up and tear-down in different tasks).
        """
        if self._supervisor is not None or self._closed:
            return
        started = anyio.Event()

        async def supervise() -> None:
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    started.set()
                    if len(self._slots) > 1:
                        tg.start_soon(self._watch_engines)
                    await self._closing.wait()
            finally:
                self._tg = None
                started.set()

        self._supervisor = asyncio.get_running_loop().create_task(supervise())
        await started.wait()

    async def __aenter__(self) -> ContainerExecutor[A, B]:
        await self._start_background()
        if self.config.reap_on_start:
            from ._reap import reap

            for slot in self._slots:
                with contextlib.suppress(EngineUnavailable):  # a call will report it
                    await reap(engine=slot.engine, labels=self.config.labels)
        if self._pooled and self.config.prewarm:
            async with anyio.create_task_group() as fill:
                for slot in self._slots:
                    fill.start_soon(self._get_pool(slot).fill)
        return self

    async def _watch_engines(self) -> None:
        """Ping every engine periodically: mark down the silent, take back the answering."""

        async def check(slot: EngineSlot) -> None:
            was_up = slot.up
            if await slot.ping() and not was_up:
                await self._sweep(slot, stopped_only=True)

        while not self._closed:
            async with anyio.create_task_group() as tg:
                for slot in self._slots:
                    tg.start_soon(check, slot)
            with anyio.move_on_after(self.config.health_interval):
                await self._closing.wait()

    async def aclose(self) -> None:
        """Remove idle pooled containers, wait for background removals, close the clients."""
        self._closed = True
        try:
            for slot in self._slots:
                if slot.pool is not None:
                    await slot.pool.aclose()
            self._closing.set()  # the supervisor's task group now waits for what still runs
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is not None:
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({supervisor})
                if not supervisor.cancelled() and (exc := supervisor.exception()) is not None:
                    raise exc
            with anyio.CancelScope(shield=True):
                for slot in self._slots:
                    if slot.up and slot.body is not None:
                        await self._sweep(slot, stopped_only=False)
        finally:
            with anyio.CancelScope(shield=True):
                for slot in self._slots:
                    await slot.engine.aclose()

    async def _sweep(self, slot: EngineSlot, *, stopped_only: bool) -> None:
        """Remove this executor's containers that an engine failure kept us from removing.

        Run when an engine comes back (only stopped ones: running ones may serve calls) and
        at close (all of them: by then every call has ended). Bounded; never raises.
        """
        with anyio.move_on_after(CLEANUP_TIMEOUT):
            try:
                found = await slot.engine.list_managed(
                    {INSTANCE_LABEL: self._labels[INSTANCE_LABEL]}
                )
            except ExecutorError:
                return
            for info in found:
                if stopped_only and info.get("State") in ("running", "created", "restarting"):
                    continue
                await remove_quietly(slot.engine, str(info["Id"]))

    def _get_pool(self, slot: EngineSlot | None = None) -> Pool:
        slot = slot or self._slots[0]
        if slot.pool is None:
            from ._pool import Pool

            slot.pool = Pool(self, slot)
        return slot.pool

    async def discard(self, container: Container) -> None:
        """Remove a used container: in the background when a task group runs, else inline."""
        with anyio.CancelScope(shield=True):
            await container.attachment.close()
        if self._tg is not None:
            self._tg.start_soon(remove_quietly, container.engine, container.id)
        else:
            await remove_quietly(container.engine, container.id)

    # -- calls -------------------------------------------------------------------------------

    def _encode(self, value: Any) -> Outgoing:
        marker = "executor-logs-end-" + os.urandom(8).hex()
        head = _RequestHead(self._schemas[0], self._schemas[1], value, marker)
        try:
            return Outgoing(_encode(head) + b"\n", marker.encode())
        except (TypeError, msgspec.EncodeError) as exc:
            raise self._in.fail(f"cannot be encoded as JSON: {exc}") from None
        except RecursionError:
            raise self._in.fail("is nested too deeply to be encoded as JSON") from None

    async def execute(self, input: A | Any) -> B:
        return (await self.run(input)).output

    async def run(self, input: A | Any) -> Execution[B]:
        t0 = _perf()
        value = self._in.coerce(input)
        payload = self._encode(value)
        timeout = self.config.timeout
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        with anyio.CancelScope(deadline=deadline) as scope:
            result = await self._route(payload, t0)
        if scope.cancelled_caught:
            raise ExecutionTimeout(timeout or 0.0, what="the container call")
        return result

    async def _route(self, payload: Outgoing, t0: float) -> Execution[B]:
        """Send the call to the least-loaded engine; retry once elsewhere if undelivered."""
        tried: list[EngineSlot] = []
        while True:
            slot = choose(self._slots, lambda s: s in tried)
            if slot is None:
                raise tried[-1].last_error or EngineUnavailable("no engine left to try.")
            slot.in_flight += 1
            try:
                result = await self._call(slot, payload, t0)
            except NotDelivered as undelivered:
                slot.mark_down(undelivered.error)
                tried.append(slot)
                if len(tried) > 1 or len(self._slots) == 1:
                    raise undelivered.error from None
                continue
            except EngineUnavailable as exc:
                slot.mark_down(exc)
                raise
            finally:
                slot.in_flight -= 1
            slot.calls += 1
            if not slot.up:
                slot.mark_up()
                if self._tg is not None:
                    self._tg.start_soon(partial(self._sweep, slot, stopped_only=True))
            return result

    async def _call(self, slot: EngineSlot, payload: Outgoing, t0: float) -> Execution[B]:
        try:
            body = await self._ready(slot)
        except EngineUnavailable as exc:
            raise NotDelivered(exc) from exc
        if self._pooled:
            # A pool refills in the background: start that even without `async with`.
            await self._start_background()
            return await self._get_pool(slot).call(payload, t0)
        try:
            container = await launch(slot.engine, body)
        except EngineUnavailable as exc:
            raise NotDelivered(exc) from exc
        try:
            reply = await exchange(
                container,
                payload,
                max_output_bytes=self.config.max_output_bytes,
                max_log_bytes=self.config.max_log_bytes,
                close_stdin=True,
            )
        except BaseException:
            # Timeout, cancellation, oversize output, engine failure: kill it now, shielded.
            await self.kill(container)
            raise
        try:
            return await self.interpret(container, reply, t0, _perf())
        finally:
            await self.discard(container)

    async def kill(self, container: Container) -> None:
        """Kill and remove a container at once, shielded and bounded (failure paths)."""
        with anyio.CancelScope(shield=True):
            await container.attachment.close()
        await remove_quietly(container.engine, container.id)

    async def interpret(
        self, container: Container, reply: Reply, t0: float, t_reply: float
    ) -> Execution[B]:
        """Turn a reply into the call's result, or raise the error it stands for."""
        text = reply.stdout.strip()
        if not text:
            raise await self._died(container, reply, "the runner wrote nothing to stdout")
        try:
            ok, raw, error = reply.response or decode_response_raw(text)
        except ProtocolError as exc:
            if reply.ended:
                died = await self._died(container, reply, None)
                if not isinstance(died, ProtocolError):
                    raise died from exc
            exc.logs = reply.logs
            raise
        if not ok:
            assert error is not None
            raise _runner_failed(error, reply.logs)
        output = self._out.decode_json(bytes(raw))
        timings = dict(container.timings)
        timings["call"] = t_reply - t0 - sum(container.timings.values())
        timings["validate_out"] = _perf() - t_reply
        return Execution(
            output=output,
            duration=_perf() - t0,
            timings=timings,
            logs=reply.logs,
            logs_truncated=reply.logs_truncated,
            container_id=container.id,
            exit_code=0 if reply.ended else None,
            image=self.config.image,
            engine=container.engine.name,
        )

    async def _died(self, container: Container, reply: Reply, reason: str | None) -> ExecutorError:
        """Explain a container that gave no usable response: OOM, exit status, or protocol."""
        with anyio.move_on_after(_INSPECT_GRACE):
            await container.engine.wait(container.id)
        state = await container.engine.state(container.id)
        # The engine records an OOM kill from a separate event that can land after the exit:
        # a SIGKILL status without the flag gets a few short looks before it is called a
        # plain non-zero exit (never every 137 an OOM: the flag decides).
        for _ in range(_OOM_FLAG_LOOKS):
            if state.oom_killed or state.exit_code != 137:
                break
            await anyio.sleep(0.1)
            state = await container.engine.state(container.id)
        tail = reply.logs[-4000:]
        if state.oom_killed:
            return ContainerFailed(
                f"the container was killed for exceeding its memory limit "
                f"({self.config.memory_bytes // MiB} MiB); raise memory_bytes or use less memory",
                exit_code=state.exit_code,
                oom_killed=True,
                logs=tail,
                container_id=container.id,
            )
        if state.exit_code not in (0, None):
            return ContainerFailed(
                f"the container exited with status {state.exit_code} without a response; "
                "see .logs for its stderr",
                exit_code=state.exit_code,
                logs=tail,
                container_id=container.id,
            )
        return ProtocolError(
            reason or "the runner's stdout is not a protocol response",
            received=reply.stdout,
            logs=tail,
        )


def _runner_failed(error: ErrorInfo, logs: str) -> ExecutionFailed:
    return ExecutionFailed(
        f"the task failed in the container ({error.code}): {error.message}",
        code=error.code,
        details=error.details,
        logs=logs,
    )


def _build_hint(image: str) -> str:
    if image.startswith("executor/runner-"):
        target = image.split("/", 1)[1].split(":", 1)[0]
        lang = target.removeprefix("runner-")
        return f"Build it with `make build-runner-{lang}` (or `make build-runners`)."
    if image.startswith("executor/generator-"):
        return "Build it with `make build-generator-orval`."
    return "Build or pull it first (nothing is pulled implicitly)."


__all__ = ["ContainerConfig", "ContainerExecutor", "EngineUnavailable"]
