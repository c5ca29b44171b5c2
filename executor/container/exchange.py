"""One request to a container and its answer: :func:`exchange`, then :func:`interpret`.

:func:`exchange` writes the encoded request and feeds the frames it reads to a
:class:`~.reader.Reader` (stdout into the response, capped; stderr into the logs, capped and
flagged) until the response line is complete, without waiting for the container to exit.
:func:`interpret` turns what came back into the call's :class:`Execution`, or raises the error
it stands for, asking the engine why a container gave no usable answer. Fresh, pooled, reused
and fork containers all go through these two.
"""

from __future__ import annotations

import os
import posixpath
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import msgspec

from .._base import Execution
from .._code import Usage
from .._errors import (
    CollectTooLarge,
    ContainerFailed,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorError,
    OutputTooLarge,
    ProtocolError,
    WorkerLost,
)
from ..protocol import Collect, ErrorInfo, Request, decode_response_files, decode_usage
from .config import MiB
from .reader import READY, LogChunk, Reader, Reply, State, TooMuchOutput

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from .._stream import Tap
    from ..engine import Attachment, Engine, ExitState
    from .lifecycle import Container

__all__ = [
    "QUEUED_SLACK",
    "CallSpec",
    "Encoder",
    "Outgoing",
    "await_ready",
    "collect_allowance",
    "conclude",
    "exchange",
    "interpret",
    "misplaced_task",
]

_perf = time.perf_counter
#: How long a single-use container may take to end its streams after answering (logs). The
#: runner exits at once, but on a loaded host (load 29 on 2 cores) that took over 0.5 s.
_LINGER = 2.0
_LINGER_MARGIN = 0.05
#: How long a container killed by SIGKILL without the OOM flag is re-inspected (0.1 s apart).
_OOM_FLAG_WINDOW = 1.0
#: Extra time allowed for the final inspection of a container that died without answering.
_INSPECT_GRACE = 5.0
#: What ends a request line (an object, then a newline) when another call waits (fork mode).
_QUEUED = b',"queued":true}\n'
#: A queued fork call is answered after the runner's cleanup (reaping, bounded at 5 s in the
#: Python runner, and the wipe of what the task left, bounded by its memory): the host's own
#: deadline, only a backstop behind the runner's TIMEOUT answer, allows for it, so that a task
#: that ended in time is never reported as timed out because its answer waited for a cleanup.
QUEUED_SLACK = 10.0


class Outgoing(NamedTuple):
    """One encoded request and the log marker it carries (see :func:`exchange`)."""

    data: bytes
    marker: bytes


def collect_allowance(collect: Collect | None) -> int:
    """Bytes the collected ``files`` may add to a response (docs/RUNNERS.md, "Files back").

    Base64 is 4/3 of a file's size and a name's JSON escapes at most double it (runners refuse
    names with control characters), so ``2 * max_bytes`` plus a few bytes per file bound it.
    """
    if collect is None:
        return 0
    return 2 * collect.max_bytes + 16 * collect.max_files + 64


class Encoder:
    """Encodes requests for one executor: schemas pre-encoded, a fresh log marker per call.

    In fork mode each request also carries the call's ``timeout`` and ``max_output_bytes``,
    which the runner enforces on the task's process; with files back, ``collect``.
    """

    __slots__ = ("_encode", "_extra", "_schemas")

    def __init__(
        self,
        schema_in: msgspec.Raw,
        schema_out: msgspec.Raw,
        *,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
        collect: Collect | None = None,
    ) -> None:
        self._schemas = (schema_in, schema_out)
        self._extra = (timeout, max_output_bytes, collect)
        self._encode = msgspec.json.Encoder().encode

    def __call__(self, value: Any) -> Outgoing:
        """Encode one request; raises TypeError/msgspec.EncodeError/RecursionError."""
        marker = "executor-logs-end-" + os.urandom(8).hex()
        request = Request(self._schemas[0], self._schemas[1], value, marker, *self._extra)
        return Outgoing(self._encode(request) + b"\n", marker.encode())


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What reading and judging one answer needs from the executor's settings.

    ``read_limit`` is how much stdout is read before :class:`OutputTooLarge` (0: the
    ``max_output_bytes``); with files back it adds :func:`collect_allowance`, and the output
    itself is then held to ``max_output_bytes`` after decoding. ``no_task_hint`` is added to a
    ``NO_TASK`` answer (:func:`misplaced_task`).
    """

    image: str
    memory_bytes: int
    max_output_bytes: int
    max_log_bytes: int
    timeout: float | None
    decode: Callable[[bytes], Any]
    collect: Collect | None = None
    read_limit: int = 0
    no_task_hint: str | None = None


async def exchange(
    container: Container,
    payload: Outgoing,
    spec: CallSpec,
    *,
    close_stdin: bool,
    tap: Tap | None = None,
    queued: bool = False,
) -> Reply:
    """Write one request and read until its response is complete or the streams end.

    ``queued`` (fork mode: another call waits for this container) adds ``"queued":true`` to
    the request: the runner may then answer after its cleanup, in one write with its next
    ready line (docs/RUNNERS.md, "Fork mode").

    Raises :class:`OutputTooLarge` when stdout passes ``max_output_bytes`` (the caller kills
    the container). Stderr beyond ``max_log_bytes`` is dropped and flagged. ``tap`` (streamed
    calls) is given each piece of stderr kept for the logs, as it arrives. What the reading
    decides is the :class:`~.reader.Reader`'s; this is its I/O.
    """
    attachment = container.attachment
    await attachment.write(payload.data[:-2] + _QUEUED if queued else payload.data)
    if close_stdin:
        attachment.close_stdin()
    reader = Reader(
        payload.marker,
        max_output_bytes=spec.read_limit or spec.max_output_bytes,
        max_log_bytes=spec.max_log_bytes,
        single_use=close_stdin,
    )
    await _read(attachment, reader, spec, tap)
    if reader.state is State.LINGERING:
        # The answer is in; the logs are owed (the marker, or a single-use container's exit,
        # usually already here). Bounded, and never into the call's deadline.
        now = anyio.current_time()
        until = min(now + _LINGER, anyio.current_effective_deadline() - _LINGER_MARGIN)
        with anyio.CancelScope(deadline=max(until, now)):
            await _read(attachment, reader, spec, tap)
    reply = reader.reply()
    if reply.rest:
        container.rest = reply.rest
    return reply


async def _read(attachment: Attachment, reader: Reader, spec: CallSpec, tap: Tap | None) -> None:
    """Feed frames to the reader while it stays in the state it is in, or to the streams' end."""
    state = reader.state
    while reader.state is state:
        frame = await attachment.read()
        if frame is None:
            reader.end()
            return
        for event in reader.feed(*frame):
            if isinstance(event, LogChunk):
                if tap is not None:
                    tap(event.data)
            elif isinstance(event, TooMuchOutput):
                raise OutputTooLarge(spec.max_output_bytes)


async def next_line(container: Container) -> bytes | None:
    """The container's next complete stdout line (stderr is dropped); None when it ended."""
    while (end := container.rest.find(b"\n")) < 0:
        frame = await container.attachment.read()
        if frame is None:
            return None
        if frame[0] == 1:
            container.rest += frame[1]
            if len(container.rest) > 65536:
                raise ProtocolError("the runner wrote an overlong line", received=container.rest)
    line, container.rest = container.rest[:end], container.rest[end + 1 :]
    return line


async def await_ready(container: Container) -> None:
    """Read a fork-mode container's stdout up to its next ``{"ready":...}`` line.

    Stderr arriving meanwhile (from processes the cleanup killed) is dropped. Raises
    :class:`ProtocolError` when the streams end first or stdout carries anything else; the
    caller bounds the wait.
    """
    hint = "check that the image's runner supports fork mode (runner images >= 0.2.0 do)"
    line = await next_line(container)
    if line is None:
        raise ProtocolError(f"the container's runner ended before it was ready; {hint}")
    if not line.startswith(READY) or container.rest.strip():
        raise ProtocolError(
            f"the container's runner wrote something other than a ready line; {hint}",
            received=line + b"\n" + container.rest,
        )
    container.owes_ready = False
    container.hold = _hold(line) if b'"hold"' in line else 0.0


class _Ready(msgspec.Struct):
    hold: float = 0.0


_READY_DECODER = msgspec.json.Decoder(_Ready)
#: Cap on a ready line's ``hold``: it extends the host's own deadline for the next call. The
#: same 10 s as ``sources._READY_TIMEOUT``, the bound on a ready line when it came after the load.
_MAX_HOLD = 10.0


def _hold(line: bytes) -> float:
    """The ready line's ``hold``: how long the runner may keep the next request waiting (its
    spare still loading) before the request's timeout starts (docs/RUNNERS.md, fork mode)."""
    try:
        hold = _READY_DECODER.decode(line).hold
    except msgspec.DecodeError:
        return 0.0
    return min(max(hold, 0.0), _MAX_HOLD) if hold == hold else 0.0


def interpret(
    container: Container, reply: Reply, t0: float, t_reply: float, spec: CallSpec
) -> Execution[Any]:
    """Turn a reply that holds a response into the call's result, or raise its error.

    Raises :class:`ProtocolError` when stdout is not one response (the caller may then ask the
    engine why, see :func:`explain`).
    """
    text = reply.stdout.strip()
    if not text:
        raise ProtocolError("the runner wrote nothing to stdout", received=reply.stdout)
    ok, raw, error, files = reply.response or decode_response_files(text)
    reply.answered = True
    if not ok:
        assert error is not None
        raise _runner_failed(error, reply.logs, spec, container)
    if spec.collect is not None:
        _check_collected(spec, raw, files, reply.logs)
    output = spec.decode(bytes(raw))
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
        image=spec.image,
        engine=container.engine.name,
        files=files if spec.collect is not None and files is not None else {},
        usage=_usage(text),
    )


def _usage(text: bytes) -> Usage | None:
    """The runner's usage report (its kernel counters over the call), if any."""
    if b'"usage"' not in text[-200:]:
        return None  # no need to scan the whole answer: the report comes last
    got = decode_usage(text)
    if not got:
        return None
    cpu, peak, wall = got.get("cpu_time"), got.get("peak_memory"), got.get("wall_time")
    return Usage(
        cpu_time=float(cpu) if isinstance(cpu, int | float) else None,
        peak_memory=int(peak) if isinstance(peak, int | float) else None,
        wall_time=float(wall) if isinstance(wall, int | float) else None,
    )


def _check_collected(
    spec: CallSpec, raw: msgspec.Raw, files: dict[str, bytes] | None, logs: str
) -> None:
    """With files back: the runner sent them, within the limits, and an output within its own."""
    collect = spec.collect
    assert collect is not None
    if files is None:
        raise ProtocolError(
            'the runner answered without the collected "files": its image predates files back '
            "(ContainerConfig.collect); rebuild it from the current runner images",
            logs=logs[-4000:],
        )
    if len(raw) > spec.max_output_bytes:
        raise OutputTooLarge(spec.max_output_bytes)
    size = sum(len(name.encode()) + len(data) for name, data in files.items())
    if len(files) > collect.max_files or size > collect.max_bytes:
        raise CollectTooLarge(
            f"the runner returned {len(files)} files ({size} bytes) from {collect.path}, more "
            f"than max_collect_files={collect.max_files} / max_collect_bytes={collect.max_bytes}",
            path=collect.path,
            max_bytes=collect.max_bytes,
            max_files=collect.max_files,
        )


async def conclude(
    container: Container, reply: Reply, t0: float, t_reply: float, spec: CallSpec
) -> Execution[Any]:
    """:func:`interpret`, asking the engine why when there is no usable response."""
    try:
        return interpret(container, reply, t0, t_reply, spec)
    except ProtocolError as exc:
        failure = await explain(container, reply, spec, exc)
        if failure is exc:
            raise
        raise failure from exc


async def ended_state(engine: Engine, container_id: str) -> ExitState:
    """How a container whose output ended stopped, as its engine tells it, once it has exited
    (a bounded wait). The engine records an OOM kill from a separate event that can land after
    the exit: a SIGKILL status without the flag gets a few short looks before it counts as a
    plain non-zero exit (never every 137 an OOM: the engine decides). The window counts from
    the first look: an engine whose ``state()`` itself waits for a late OOM record (Docker's
    event log) is not asked again after it."""
    with anyio.move_on_after(_INSPECT_GRACE):
        await engine.wait(container_id)
    looks_until = anyio.current_time() + _OOM_FLAG_WINDOW
    state = await engine.state(container_id)
    while state.exit_code == 137 and not state.oom_killed and anyio.current_time() < looks_until:
        await anyio.sleep(0.1)
        state = await engine.state(container_id)
    return state


async def explain(
    container: Container, reply: Reply, spec: CallSpec, error: ProtocolError
) -> ExecutorError:
    """Why a container gave no usable response: OOM, exit status, or the protocol error."""
    if not reply.ended and reply.stdout.strip():
        error.logs = reply.logs
        return error
    state = await ended_state(container.engine, container.id)
    if state.removed:
        return WorkerLost(
            f"the container {container.id[:12]} was removed while it ran the call, by something "
            "other than this executor (docker rm -f, a prune, or Podman removing its image "
            "with --force); the task may or may not have run; retry the call if it is safe "
            "to run twice",
            worker=container.id,
        )
    tail = reply.logs[-4000:]
    if state.oom_killed:
        return ContainerFailed(
            f"the container was killed for exceeding its memory limit "
            f"({spec.memory_bytes // MiB} MiB); raise memory_bytes or use less memory",
            exit_code=state.exit_code,
            oom_killed=True,
            logs=tail,
            container_id=container.id,
        )
    if state.exit_code not in (0, None):
        # 126/127: a shell could not run what it was given (not executable, not found), as when
        # an image without a runner hands the request to its shell.
        hint = (
            f": the image's entrypoint could not run what it was given; check that {spec.image} "
            "is a runner image (executor/runner-python, -node, -go) or one built FROM one"
            if state.exit_code in (126, 127)
            else ""
        )
        return ContainerFailed(
            f"the container exited with status {state.exit_code} without a response{hint}; "
            "see .logs for its stderr",
            exit_code=state.exit_code,
            logs=tail,
            container_id=container.id,
        )
    error.logs = tail
    return error


def _runner_failed(
    error: ErrorInfo, logs: str, spec: CallSpec, container: Container
) -> ExecutorError:
    """The error a runner's ``ok: false`` answer stands for."""
    code = error.code
    if code == "TIMEOUT":
        return ExecutionTimeout(spec.timeout or 0.0, what="the container call")
    if code in ("OOM_KILLED", "EXIT_NONZERO"):
        oom = code == "OOM_KILLED"
        message = (
            f"the task's process was killed for exceeding the memory limit "
            f"({spec.memory_bytes // MiB} MiB); raise memory_bytes or use less memory"
            if oom
            else f"the task's process ended without answering: {error.message}"
        )
        return ContainerFailed(
            message,
            exit_code=error.exit_code,
            oom_killed=oom,
            logs=logs[-4000:],
            container_id=container.id,
        )
    if code == "PROTOCOL_ERROR":
        return ProtocolError(error.message, logs=logs[-4000:])
    if code == "OUTPUT_TOO_LARGE":
        return OutputTooLarge(spec.max_output_bytes)
    if code == "COLLECT_TOO_LARGE":
        collect = spec.collect
        return CollectTooLarge(
            error.message,
            path=collect.path if collect else None,
            max_bytes=collect.max_bytes if collect else None,
            max_files=collect.max_files if collect else None,
            logs=logs[-4000:],
        )
    message = error.message
    if code == "NO_TASK" and spec.no_task_hint:
        message = f"{message}. {spec.no_task_hint}"
    return ExecutionFailed(
        f"the task failed in the container ({code}): {message}",
        code=code,
        details=error.details,
        logs=logs,
    )


#: Where the stock runners look for the task module, by its kind (``EXECUTOR_MODULE`` aside).
TASK_MODULES = {".py": "/app/execute.py", ".mjs": "/app/execute.mjs", ".js": "/app/execute.js"}


def misplaced_task(files: Iterable[str], env: Mapping[str, str]) -> str | None:
    """What to add to a runner's ``NO_TASK`` when ``files`` put a module somewhere it does not
    look (a ``/app/main.py`` for the Python runner's ``/app/execute.py``), else ``None``."""
    looked = {env.get("EXECUTOR_MODULE"), *TASK_MODULES.values()}
    for path in files:
        suffix = posixpath.splitext(path)[1]
        if suffix in TASK_MODULES and path not in looked:
            return (
                f"Your files= put {path} there, but the runner loads {TASK_MODULES[suffix]}: "
                f"use that key (files={{{TASK_MODULES[suffix]!r}: ...}}), or set "
                f"env={{'EXECUTOR_MODULE': {path!r}}}"
            )
    return None
