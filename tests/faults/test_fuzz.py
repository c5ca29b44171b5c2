"""Fuzzing the response decoder and the stream handling with hypothesis.

``exchange()`` reads frames from an :class:`~executor.engine.Attachment`; here a scripted
attachment yields arbitrary bytes on stdout and stderr in arbitrary chunkings, so the fuzzing
covers our own demultiplexing and response assembly (Docker's framing is aiodocker's job).
Only documented errors may come out, and nothing may hang.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.lowlevel
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor import (
    ContainerFailed,
    ExecutionFailed,
    OutputTooLarge,
    OutputValidationError,
    ProtocolError,
)
from executor.container.exchange import (
    CallSpec,
    Outgoing,
    await_ready,
    conclude,
    exchange,
)
from executor.container.lifecycle import Container
from executor.engine import Attachment, Engine, ExitState
from executor.protocol import decode_response, decode_response_files

if TYPE_CHECKING:
    from executor.container.reader import Reply

#: The per-call log marker of these tests (the runner echoes it: see exchange()).
MARKER = b"m4rk3r-0123"
#: What a call may raise once the streams are read (interpret()).
DOCUMENTED = (ProtocolError, ExecutionFailed, OutputValidationError, ContainerFailed)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Flip, drop or insert a few bytes (invalid UTF-8 included)."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "drop", "insert"]))
        if op == "flip":
            buf[i] = draw(st.integers(0, 255))
        elif op == "drop":
            del buf[i]
        else:
            buf[i:i] = draw(st.binary(min_size=1, max_size=3))
    return bytes(buf)


@st.composite
def response_like(draw: st.DrawFn) -> bytes:
    """Bytes near a protocol response: real responses, mutated ones, deep nesting, garbage."""
    kind = draw(st.sampled_from(["ok", "error", "weird", "deep", "bytes"]))
    if kind == "ok":
        data = json.dumps({"ok": True, "output": draw(json_values)}).encode()
    elif kind == "error":
        error = {"message": draw(st.text()), "code": draw(st.text()), "details": draw(json_values)}
        data = json.dumps({"ok": False, "error": draw(st.one_of(st.just(error), json_values))})
        data = data.encode()
    elif kind == "weird":
        data = json.dumps(
            draw(st.dictionaries(st.sampled_from(["ok", "output", "error"]), json_values))
        ).encode()
    elif kind == "deep":
        depth = draw(st.integers(1, 200_000))
        open_, close = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        data = b'{"ok": true, "output": ' + open_ * depth + b"1" + close * depth + b"}"
    else:
        return draw(st.binary(max_size=512))
    return mutate(data, draw) if draw(st.booleans()) else data


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=1024), response_like()))
def test_decoders_raise_only_protocol_error(data: bytes) -> None:
    """decode_response and decode_response_files return or raise ProtocolError, nothing else."""
    for decode in (decode_response, decode_response_files):
        with contextlib.suppress(ProtocolError):
            decode(data)


class ScriptedAttachment(Attachment):
    """An attachment that plays back a list of ``(stream, bytes)`` frames, then ends."""

    def __init__(self, frames: list[tuple[int, bytes]]) -> None:
        self.frames = deque(frames)
        self.consumed: list[tuple[int, bytes]] = []
        self.written = b""

    async def write(self, data: bytes) -> None:
        self.written += data

    def close_stdin(self) -> None:
        pass

    def alive(self) -> bool:
        return bool(self.frames)

    async def read(self) -> tuple[int, bytes] | None:
        await anyio.lowlevel.checkpoint()
        if not self.frames:
            return None
        frame = self.frames.popleft()
        self.consumed.append(frame)
        return frame

    async def close(self) -> None:
        self.frames.clear()


class ExitedEngine:
    """Just enough engine for interpret(): the container has exited with ``exit_code``."""

    name = "scripted"

    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code

    async def wait(self, container_id: str) -> None:
        await anyio.lowlevel.checkpoint()

    async def state(self, container_id: str) -> ExitState:
        # 137 comes with the OOM flag: without it interpret() takes a few timed looks for a
        # late flag (real engines), which would make each such example take a second.
        return ExitState(running=False, exit_code=self.exit_code, oom_killed=self.exit_code == 137)


def spec_for(max_output: int, max_log: int) -> CallSpec:
    """What the executor would pass to exchange() and conclude(): untyped output."""
    return CallSpec(
        image="fuzz:latest",
        memory_bytes=256 * 1024 * 1024,
        max_output_bytes=max_output,
        max_log_bytes=max_log,
        timeout=None,
        decode=msgspec.json.decode,
    )


@st.composite
def chunked(draw: st.DrawFn, stdout: bytes) -> list[tuple[int, bytes]]:
    """``stdout`` cut at arbitrary points, interleaved with arbitrary stderr frames."""
    cuts = sorted(draw(st.sets(st.integers(1, max(len(stdout) - 1, 1)), max_size=8)))
    pieces = [stdout[a:b] for a, b in zip([0, *cuts], [*cuts, len(stdout)], strict=True)]
    frames: list[tuple[int, bytes]] = []
    for piece in pieces:
        for noise in draw(st.lists(st.binary(min_size=1, max_size=64), max_size=2)):
            frames.append((2, noise))
        if piece:
            frames.append((1, piece))
    return frames


async def play(
    frames: list[tuple[int, bytes]],
    *,
    max_output: int,
    max_log: int,
    exit_code: int = 0,
    marker: bytes = MARKER,
) -> tuple[Reply | OutputTooLarge, Any, ScriptedAttachment]:
    """exchange() then interpret() over the frames; the outcome of each step."""
    attachment = ScriptedAttachment(frames)
    engine = ExitedEngine(exit_code)
    container = Container("fuzz", cast("Engine", engine), attachment)
    with anyio.fail_after(5):
        try:
            spec = spec_for(max_output, max_log)
            reply = await exchange(container, Outgoing(b"{}\n", marker), spec, close_stdin=True)
        except OutputTooLarge as exc:
            return exc, None, attachment
        try:
            outcome: Any = await conclude(container, reply, 0.0, 0.0, spec)
        except DOCUMENTED as exc:
            outcome = exc
    return reply, outcome, attachment


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([1, 2]),
            st.one_of(
                st.binary(max_size=256),
                response_like(),
                st.just(MARKER + b"\n"),
                st.just(b'{"ok": true, "output": 1, "log_marker": "' + MARKER + b'"}\n'),
            ),
        ),
        max_size=12,
    ),
    marker=st.sampled_from([b"", MARKER]),
    max_output=st.integers(1, 4096),
    max_log=st.integers(1, 512),
    exit_code=st.sampled_from([0, 1, 137]),
)
def test_stream_handling_raises_only_documented_errors(
    frames: list[tuple[int, bytes]], max_output: int, max_log: int, exit_code: int, marker: bytes
) -> None:
    """Any frames in any order end in a result, OutputTooLarge or an interpret() error."""
    reply, _, attachment = anyio.run(
        lambda: play(
            frames, max_output=max_output, max_log=max_log, exit_code=exit_code, marker=marker
        )
    )
    read_out = sum(len(d) for s, d in attachment.consumed if s == 1)
    read_err = sum(len(d) for s, d in attachment.consumed if s == 2)
    if isinstance(reply, OutputTooLarge):
        assert read_out > max_output
        return
    # Stdout read after the answer (while waiting for the logs) is discarded, not kept.
    assert len(reply.stdout) <= max_output
    assert len(reply.logs) <= max_log
    assert reply.logs_truncated == (read_err > max_log)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), value=json_values, marked=st.booleans())
def test_a_valid_response_survives_any_chunking(
    data: st.DataObject, value: Any, marked: bool
) -> None:
    """A valid response line, cut anywhere and interleaved with stderr, decodes to its value;
    with the log marker, the marker never shows in the logs."""
    response: dict[str, Any] = {"ok": True, "output": value}
    if marked:
        response["log_marker"] = MARKER.decode()
    line = msgspec.json.encode(response) + b"\n"
    frames = data.draw(chunked(line))
    if marked:
        # The runner writes the marker to stderr last before answering.
        at = data.draw(st.integers(0, len(frames)))
        frames.insert(at, (2, MARKER + b"\n"))
    _, outcome, _ = anyio.run(lambda: play(frames, max_output=len(line), max_log=1024))
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.output == value
    assert MARKER.decode() not in outcome.logs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), value=json_values)
def test_a_fork_mode_ready_line_is_never_lost(data: st.DataObject, value: Any) -> None:
    """A fork-mode runner answers, then writes its next ready line once it is clean; cut
    anywhere and interleaved with stderr, the ready line may arrive before the log marker the
    executor waits for. It is kept for the next lease, never dropped (a dropped ready line cost
    that container a 10 s wait and a replacement)."""
    response = {"ok": True, "output": value, "log_marker": MARKER.decode()}
    line = msgspec.json.encode(response) + b"\n"
    ready = b'{"ready":true}\n'
    frames = data.draw(chunked(line + ready))
    # The marker goes to stderr before the answer, but the engine's stderr pipe may deliver it
    # after every stdout byte, the ready line's included.
    at = data.draw(st.integers(0, len(frames)))
    frames.insert(at, (2, MARKER + b"\n"))

    async def call() -> tuple[Any, ScriptedAttachment]:
        attachment = ScriptedAttachment(frames)
        container = Container("fork", cast("Engine", ExitedEngine(0)), attachment)
        spec = spec_for(len(line) + len(ready), 1024)
        with anyio.fail_after(5):
            reply = await exchange(container, Outgoing(b"{}\n", MARKER), spec, close_stdin=False)
            outcome = await conclude(container, reply, 0.0, 0.0, spec)
            container.owes_ready = True
            await await_ready(container)
        assert not container.owes_ready
        return outcome, attachment

    outcome, attachment = anyio.run(call)
    assert not attachment.frames  # every frame was read: the call and its ready line
    assert outcome.output == value
    assert MARKER.decode() not in outcome.logs


@pytest.mark.parametrize(
    ("line", "hold"),
    [
        (b'{"ready":true}', 0.0),
        (b'{"ready":true,"runner":"go","sealed":false,"hold":10}', 10.0),
        (b'{"ready":true,"hold":0.25}', 0.25),
        (b'{"ready":true,"hold":1e9}', 10.0),
        (b'{"ready":true,"hold":-1}', 0.0),
        (b'{"ready":true,"hold":"soon"}', 0.0),
    ],
)
def test_a_ready_line_says_how_long_the_next_request_may_be_held(line: bytes, hold: float) -> None:
    """A fork-mode ready line's ``hold`` (the runner may keep the next request waiting for its
    spare outside the request's timeout) is kept on the container, clamped to 0-10 s."""

    async def ready() -> Container:
        attachment = ScriptedAttachment([(1, line + b"\n")])
        container = Container("fork", cast("Engine", ExitedEngine(0)), attachment)
        container.hold = 3.0  # from an earlier ready line: replaced
        await await_ready(container)
        return container

    assert anyio.run(ready).hold == hold
