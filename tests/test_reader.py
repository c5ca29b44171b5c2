"""The sans-I/O reader of one answer (container/reader.py) and exchange()'s loop around it.

The reader is fed ``(stream, data)`` frames as the engine delivers them: cut anywhere, stdout
and stderr interleaved in any order. The properties feed the same runner output whole and in
arbitrary frames; the explicit cases pin each edge of the stream one by one.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.lowlevel
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor import OutputTooLarge
from executor._stream import Tap
from executor.container.exchange import CallSpec, Outgoing, exchange
from executor.container.lifecycle import Container
from executor.container.reader import (
    LogChunk,
    MarkerSeen,
    Reader,
    ResponseLine,
    State,
    TooMuchOutput,
)
from executor.engine import Attachment, Engine

if TYPE_CHECKING:
    from executor.container.reader import Event, Reply

MARKER = b"executor-logs-end-0123456789abcdef"
READY = b'{"ready":true}\n'

Frames = list[tuple[int, bytes]]


def answer(output: Any = 1, *, marker: bytes = MARKER) -> bytes:
    """A runner's response line, echoing ``marker`` when there is one."""
    response: dict[str, Any] = {"ok": True, "output": output}
    if marker:
        response["log_marker"] = marker.decode()
    return msgspec.json.encode(response) + b"\n"


def reader(
    *, marker: bytes = MARKER, single_use: bool = False, out: int = 1 << 20, log: int = 1 << 20
) -> Reader:
    return Reader(marker, max_output_bytes=out, max_log_bytes=log, single_use=single_use)


def read(
    r: Reader, frames: Frames, *, eof: bool = True
) -> tuple[list[Event], Reply, deque[tuple[int, bytes]]]:
    """What exchange() does, without I/O: feed frames while the reader wants them; the streams
    end after the last one (``eof``). Returns the events, the reply and the frames left."""
    left = deque(frames)
    events: list[Event] = []
    while r.state is not State.DONE:
        if not left:
            if not eof:
                break
            r.end()
            break
        events += r.feed(*left.popleft())
        if any(isinstance(e, TooMuchOutput) for e in events):
            break
    return events, r.reply(), left


def state_of(r: Reader) -> State:
    """The reader's state, read afresh (a plain ``r.state`` is narrowed by mypy's asserts)."""
    return r.state


def tapped(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, LogChunk))


def owed(reply: Reply, left: deque[tuple[int, bytes]]) -> bytes:
    """Stdout that belongs to the next call: kept by the reader, or not read yet."""
    return reply.rest + b"".join(data for stream, data in left if stream == 1)


# -- the same output whole or in any frames ---------------------------------------------------


@st.composite
def cut(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points (one piece per frame)."""
    if not data:
        return []
    cuts = sorted(draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=12)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if data[a:b]]


@st.composite
def interleaved(draw: st.DrawFn, stdout: bytes, stderr: bytes) -> Frames:
    """Both streams cut anywhere, their frames interleaved in any order, each in order."""
    out, err = draw(cut(stdout)), draw(cut(stderr))
    order = draw(st.permutations([1] * len(out) + [2] * len(err)))
    pieces = {1: iter(out), 2: iter(err)}
    return [(stream, next(pieces[stream])) for stream in order]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    value=json_values,
    logs=st.binary(max_size=200),
    mode=st.sampled_from(["serving", "single-use", "single-use unmarked"]),
    ready=st.booleans(),
    small_log_cap=st.booleans(),
)
def test_any_framing_reads_what_the_whole_output_reads(
    data: st.DataObject, value: Any, logs: bytes, mode: str, ready: bool, small_log_cap: bool
) -> None:
    """A runner's output (logs, the marker line, the response, a fork runner's ready line) cut
    into any frames and interleaved in any order gives the reply, the tap's logs and the stdout
    owed to the next call that the same output fed whole gives."""
    single_use = mode != "serving"
    marker = b"" if mode == "single-use unmarked" else MARKER
    stdout = answer(value, marker=marker) + (READY if ready and not single_use else b"")
    stderr = logs + marker + b"\n" if marker else logs
    log_cap = len(logs) // 2 if small_log_cap else len(stderr) + 1
    frames = data.draw(interleaved(stdout, stderr))

    def run(frames: Frames) -> tuple[Any, ...]:
        r = reader(marker=marker, single_use=single_use, out=len(stdout), log=log_cap)
        events, reply, left = read(r, frames)
        response = [e for e in events if isinstance(e, ResponseLine)]
        assert len(response) == 1 and response[0].response == reply.response
        assert reply.response is not None and msgspec.json.decode(reply.response[1]) == value
        # The tap got what the logs kept, the marker line too when it came before the end.
        return (
            reply.stdout,
            reply.logs,
            reply.logs_truncated,
            reply.ended,
            owed(reply, left),
            tapped(events).partition(MARKER)[0] if marker else tapped(events),
        )

    whole = run([(2, stderr), (1, stdout)] if stderr else [(1, stdout)])
    assert run(frames) == whole
    assert whole[1] == logs[:log_cap].decode("utf-8", "replace")
    assert whole[3] == (mode == "single-use unmarked")  # only then read to the streams' end


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([1, 2]),
            st.one_of(
                st.binary(max_size=64),
                st.just(answer()),
                st.just(answer(marker=b"")),
                st.just(MARKER + b"\n"),
                st.just(READY),
            ),
        ),
        max_size=10,
    ),
    single_use=st.booleans(),
    out=st.integers(1, 300),
    log=st.integers(0, 100),
)
def test_the_caps_hold_for_any_frames(frames: Frames, single_use: bool, out: int, log: int) -> None:
    """Whatever comes: the tap gets exactly the stderr the logs keep, the logs stay within
    their cap and are flagged when stderr passed it, and stdout past its limit before a
    response is TooMuchOutput."""
    r = reader(single_use=single_use, out=out, log=log)
    events, reply, left = read(r, frames)
    consumed = frames[: len(frames) - len(left)]
    err = b"".join(d for s, d in consumed if s == 2)
    assert tapped(events) == err[:log]
    assert reply.logs_truncated == (len(err) > log)
    if events and isinstance(events[-1], TooMuchOutput):
        assert sum(len(d) for s, d in consumed if s == 1) > out
    else:
        # Held within the limit, but for the one frame that a serving reader took last.
        assert len(reply.stdout) <= out + max((len(d) for s, d in consumed if s == 1), default=0)


# -- each edge, explicitly ------------------------------------------------------------------


def test_a_response_without_marker_is_done_at_once_in_a_serving_container() -> None:
    """A serving runner that echoes no marker: the reply is complete at the response line;
    nothing more is read (its later logs belong to no call)."""
    r = reader(marker=b"")
    (event,) = r.feed(1, answer(7, marker=b""))
    assert state_of(r) is State.DONE
    reply = r.reply()
    assert event == ResponseLine(reply.response) and bytes(event.response[1]) == b"7"  # type: ignore[arg-type]
    assert not reply.ended and reply.rest == b""


def test_a_single_use_container_without_marker_is_read_to_the_end() -> None:
    """A single-use runner that echoes no marker is about to exit: its logs are read to the
    end of the streams, which marks the reply ended."""
    r = reader(marker=b"", single_use=True)
    r.feed(1, answer(marker=b""))
    assert state_of(r) is State.LINGERING
    r.feed(2, b"late log\n")
    r.end()
    reply = r.reply()
    assert state_of(r) is State.DONE and reply.ended and reply.logs == "late log\n"


def test_the_marker_before_the_response_means_the_logs_are_in() -> None:
    """The marker arriving first (the usual order): done at the response, marker cut."""
    r = reader()
    assert r.feed(2, b"log\n" + MARKER + b"\n") == (
        MarkerSeen(),
        LogChunk(b"log\n" + MARKER + b"\n"),
    )
    r.feed(1, answer())
    assert state_of(r) is State.DONE
    assert r.reply().logs == "log\n"


def test_the_marker_after_the_response_is_awaited_and_late_writes_are_cut() -> None:
    """Stderr written before the answer can arrive after it: the reader lingers until the
    marker, then cuts the marker line and anything after it (a child's late writes)."""
    r = reader(single_use=True)
    r.feed(1, answer())
    assert state_of(r) is State.LINGERING
    r.feed(2, b"early\n")
    assert state_of(r) is State.LINGERING
    r.feed(2, MARKER + b"\nlate child write\n")
    assert state_of(r) is State.DONE
    reply = r.reply()
    assert reply.logs == "early\n" and not reply.ended and reply.response is not None


def test_a_marker_cut_into_many_frames_is_seen() -> None:
    """The marker is recognised however the frames cut it, one byte per frame included (the
    old search kept only the last frame's tail and missed a marker cut in three)."""
    r = reader()
    r.feed(1, answer())
    for byte in MARKER:
        assert state_of(r) is State.LINGERING
        r.feed(2, bytes([byte]))
    assert state_of(r) is State.DONE
    assert r.reply().logs == ""


def test_the_marker_is_seen_past_the_log_cap() -> None:
    """A stderr flood fills the logs; the marker behind it is still seen (and flagged
    truncation), so the call does not wait for it in vain."""
    r = reader(log=10)
    r.feed(1, answer())
    events = r.feed(2, b"x" * 100 + MARKER + b"\n")
    assert events == (MarkerSeen(), LogChunk(b"x" * 10))
    assert state_of(r) is State.DONE
    reply = r.reply()
    assert reply.logs == "x" * 10 and reply.logs_truncated


def test_the_tap_gets_each_kept_piece_and_nothing_past_the_cap() -> None:
    """Each stderr frame's kept part is one LogChunk, in order; once the logs are full,
    frames make no LogChunk and flag the truncation."""
    r = reader(log=6)
    assert r.feed(2, b"abcd") == (LogChunk(b"abcd"),)
    assert r.feed(2, b"efgh") == (LogChunk(b"ef"),)
    assert r.feed(2, b"ij") == ()
    r.end()
    assert r.reply().logs == "abcdef" and r.reply().logs_truncated


def test_stdout_past_the_limit_before_the_response_is_too_much_output() -> None:
    """Stdout over the limit before a complete response line: TooMuchOutput, and the reader
    takes no more frames."""
    r = reader(out=10)
    assert r.feed(1, b"0123456789") == ()
    assert r.feed(1, b"x") == (TooMuchOutput(11),)
    assert state_of(r) is State.DONE
    with pytest.raises(RuntimeError, match="done"):
        r.feed(2, b"more")


def test_a_ready_line_after_the_response_is_kept_for_the_next_call() -> None:
    """A fork runner's next ready line, whole or begun, in the response's frame or arriving
    while the marker is awaited, is the reply's rest, not part of its stdout."""
    for tail in (READY, b'{"rea', b'{"ready":true}\n{"ready'):
        r = reader()
        r.feed(1, answer() + tail)
        r.feed(2, MARKER + b"\n")
        reply = r.reply()
        assert reply.rest == tail and reply.stdout == answer() and reply.response is not None
    r = reader()
    r.feed(1, answer())
    r.feed(1, READY)
    r.feed(2, MARKER + b"\n")
    assert r.reply().rest == READY and r.reply().stdout == answer()


def test_other_stdout_after_the_response_voids_it() -> None:
    """Anything but a ready line after the response line leaves no decoded response: the
    whole stdout is judged (a ProtocolError there); whitespace alone is harmless."""
    r = reader()
    r.feed(2, MARKER + b"\n")
    r.feed(1, answer() + b"extra\n")
    reply = r.reply()
    assert reply.response is None and reply.stdout == answer() + b"extra\n" and not reply.rest
    r = reader()
    r.feed(2, MARKER + b"\n")
    r.feed(1, answer() + b" \n\n")
    assert r.reply().response is not None


def test_a_single_use_container_keeps_no_stdout_after_the_response() -> None:
    """A single-use container has no next call: a ready-looking line after its response
    voids the response, and stdout arriving while its logs are awaited is dropped."""
    r = reader(single_use=True)
    r.feed(2, MARKER + b"\n")
    r.feed(1, answer() + READY)
    assert r.reply().response is None and r.reply().rest == b""
    r = reader(single_use=True)
    r.feed(1, answer())
    r.feed(1, b"dropped")
    r.feed(2, MARKER + b"\n")
    assert r.reply().stdout == answer() and r.reply().response is not None


def test_a_serving_container_keeps_stdout_while_lingering_up_to_the_limit() -> None:
    """While the marker is awaited, a serving container's stdout is kept only while what
    is held is within the limit (never an error: the answer is in)."""
    line = answer()
    r = reader(out=len(line) + 3)
    r.feed(1, line)
    r.feed(1, b'{"re')  # held: len(line) <= limit before it
    r.feed(1, b"ignored")  # held is past the limit now: dropped
    r.feed(2, MARKER + b"\n")
    assert r.reply().rest == b'{"re'


def test_a_first_line_that_is_no_response_is_decoded_once() -> None:
    """The first complete line decides: when it is not a response, later lines are not
    tried; at the end the whole stdout is the reply's, logs unstripped, no response."""
    r = reader()
    r.feed(1, b"not json\n")
    r.feed(1, answer())
    r.feed(2, b"log " + MARKER)
    assert state_of(r) is State.READING
    r.end()
    reply = r.reply()
    assert reply.response is None and reply.ended
    assert reply.stdout == b"not json\n" + answer()
    assert reply.logs == "log " + MARKER.decode()


def test_a_response_split_across_frames_is_decoded_when_its_newline_comes() -> None:
    """The response line may come in any number of frames; it is decoded at its newline."""
    line = answer([1, 2, 3])
    r = reader()
    for i in range(len(line) - 1):
        assert r.feed(1, line[i : i + 1]) == ()
    (event,) = r.feed(1, line[-1:])
    assert isinstance(event, ResponseLine)
    assert msgspec.json.decode(event.response[1]) == [1, 2, 3]


# -- exchange(): the loop around the reader -------------------------------------------------


class Played(Attachment):
    """Plays back frames, records what was written; the streams end after the last."""

    def __init__(self, frames: Frames) -> None:
        self.frames = deque(frames)
        self.written = b""
        self.stdin_closed = False

    async def write(self, data: bytes) -> None:
        self.written += data

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def alive(self) -> bool:
        return True

    async def read(self) -> tuple[int, bytes] | None:
        await anyio.lowlevel.checkpoint()
        return self.frames.popleft() if self.frames else None

    async def close(self) -> None:
        pass


def spec(max_output: int = 1 << 20, *, read_limit: int = 0, max_log: int = 1 << 20) -> CallSpec:
    return CallSpec("i", 1 << 28, max_output, max_log, None, msgspec.json.decode, None, read_limit)


def container(frames: Frames) -> Container:
    return Container("c", cast("Engine", None), Played(frames))


async def test_exchange_writes_taps_and_keeps_the_ready_line() -> None:
    """exchange() writes the request, hands each kept stderr piece to the tap as it is read,
    and leaves a fork runner's ready line in Container.rest for the next call."""
    box = container([(2, b"a"), (1, answer() + READY), (2, b"b\n" + MARKER + b"\n")])
    pieces: list[bytes] = []
    reply = await exchange(
        box, Outgoing(b"{}\n", MARKER), spec(), close_stdin=False, tap=Tap(pieces.append)
    )
    played = cast("Played", box.attachment)
    assert played.written == b"{}\n" and not played.stdin_closed
    assert pieces == [b"a", b"b\n" + MARKER + b"\n"]
    assert reply.logs == "a" + "b\n" and box.rest == READY


async def test_exchange_allows_the_collect_allowance_and_no_more() -> None:
    """With files back, stdout may reach the read limit (max_output_bytes plus the files'
    allowance); past it, OutputTooLarge names max_output_bytes, the caller's setting."""
    line = answer("x" * 50)
    ok = container([(1, line)])
    reply = await exchange(
        ok, Outgoing(b"{}\n", MARKER), spec(10, read_limit=len(line)), close_stdin=True
    )
    assert reply.response is not None and reply.ended
    big = container([(1, line)])
    with pytest.raises(OutputTooLarge) as info:
        await exchange(
            big, Outgoing(b"{}\n", MARKER), spec(10, read_limit=len(line) - 1), close_stdin=True
        )
    assert info.value.limit == 10
    assert cast("Played", big.attachment).stdin_closed


async def test_exchange_waits_for_the_logs_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the marker after the answer is bounded (_LINGER, shortened here): the
    reply comes with what arrived, not ended."""
    monkeypatch.setattr("executor.container.exchange._LINGER", 0.05)

    class Silent(Played):
        async def read(self) -> tuple[int, bytes] | None:
            if self.frames:
                return await super().read()
            await anyio.sleep_forever()
            raise AssertionError

    box = Container("c", cast("Engine", None), Silent([(1, answer()), (2, b"log\n")]))
    reply = await exchange(box, Outgoing(b"{}\n", MARKER), spec(), close_stdin=False)
    assert reply.response is not None and not reply.ended and reply.logs == "log\n"
