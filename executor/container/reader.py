"""Reading one answer from a container's output, without I/O: :class:`Reader`.

The engine delivers a container's stdout (stream 1) and stderr (stream 2) as frames, cut
anywhere and interleaved in any order (it copies the two through separate pipes). Fed those
frames, the reader assembles the response line (stdout, capped), the logs (stderr, capped and
flagged), looks for the call's log marker (wherever the frames cut it), and keeps what a
serving runner writes after its answer (a fork runner's next ready line). It returns events for
what its caller must act on and does no I/O: :func:`~executor.container.exchange.exchange` is
the loop around it (write the request, read frames, feed them, act on the events), as h11 is
to an HTTP connection.

Reading has three states. ``READING``: up to the first newline-terminated line on stdout that
is a response. Then ``LINGERING`` when the logs are still owed: stderr up to the log marker the
response echoes (stderr written before the answer can arrive after it), or, for a single-use
container whose runner does not echo it, to the end of the streams. ``DONE``: nothing more is
awaited (the marker passed, the streams ended, no logs owed, or stdout passed its limit).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from .._errors import ProtocolError
from ..protocol import ErrorInfo, decode_response_files

__all__ = [
    "READY",
    "Decoded",
    "Event",
    "LogChunk",
    "MarkerSeen",
    "Reader",
    "Reply",
    "ResponseLine",
    "State",
    "TooMuchOutput",
]

#: How a fork-mode runner's ready line starts.
READY = b'{"ready":'

#: A decoded response: ``(ok, output as raw JSON, error, collected files)``.
Decoded = tuple[bool, msgspec.Raw, ErrorInfo | None, dict[str, bytes] | None]


@dataclass(slots=True)
class Reply:
    """What came back from one exchange."""

    stdout: bytes
    logs: str
    logs_truncated: bool
    ended: bool  # the output streams ended (the container is exiting)
    #: The response, when exchange() already decoded it and stdout holds nothing else.
    response: Decoded | None = None
    #: Set by interpret(): stdout held one well-formed response (the runner is in order,
    #: whatever the response says), so a reusable container may serve again.
    answered: bool = False
    #: Stdout after the response that belongs to the next call (a fork runner's ready line).
    rest: bytes = b""


class State(enum.Enum):
    """Where a :class:`Reader` is (see the module docstring)."""

    READING = "reading"
    LINGERING = "lingering"
    DONE = "done"


class LogChunk(msgspec.Struct, frozen=True):
    """Stderr kept for the logs, as it arrived (a streamed call's tap gets each one)."""

    data: bytes


class MarkerSeen(msgspec.Struct, frozen=True):
    """The call's log marker passed on stderr: every log line written before it is in."""


class ResponseLine(msgspec.Struct, frozen=True):
    """Stdout's first line is complete and is a response."""

    response: Decoded


class TooMuchOutput(msgspec.Struct, frozen=True):
    """Stdout passed its limit before a response line was complete (``received`` bytes): the
    caller raises :class:`~executor.OutputTooLarge` and kills the container."""

    received: int


Event = LogChunk | MarkerSeen | ResponseLine | TooMuchOutput

_NOTHING: tuple[Event, ...] = ()
_MARKER_SEEN = MarkerSeen()


def _first_line(stdout: bytearray) -> Decoded | None:
    """The response on stdout's first line, once that line is complete and decodes."""
    end = stdout.find(b"\n")
    if end < 0:
        return None
    try:
        return decode_response_files(bytes(stdout[:end]))
    except ProtocolError:
        return None


class Reader:
    """The state of reading one answer: feed it frames, act on its events, then :meth:`reply`.

    ``max_output_bytes`` is how much stdout may come before the response line is complete
    (beyond it: :class:`TooMuchOutput`); ``max_log_bytes`` how much stderr the logs keep (the
    rest is dropped and flagged, but still searched for the ``marker``; an empty ``marker``:
    none was sent). ``single_use``: the container's stdin was closed and it exits after this
    answer, so stdout after the response is dropped and, without an echoed marker, the logs
    are read to the end of the streams; otherwise the container serves on and stdout after the
    response (up to the limit) is kept for the next call.
    """

    __slots__ = (
        "_echo",
        "_ended",
        "_first_line_done",
        "_logs",
        "_logs_truncated",
        "_marked",
        "_marker",
        "_marker_seen",
        "_max_log_bytes",
        "_max_output_bytes",
        "_response",
        "_single_use",
        "_stdout",
        "_tail",
        "state",
    )

    def __init__(
        self, marker: bytes, *, max_output_bytes: int, max_log_bytes: int, single_use: bool
    ) -> None:
        self.state = State.READING
        self._marker = marker
        self._echo = b'"log_marker":"' + marker + b'"}'
        self._max_output_bytes = max_output_bytes
        self._max_log_bytes = max_log_bytes
        self._single_use = single_use
        self._stdout = bytearray()
        self._logs = bytearray()
        self._logs_truncated = False
        self._tail = b""  # the last len(marker) bytes of stderr, for a marker cut by frames
        self._marker_seen = False
        self._marked = False  # the response echoed the marker
        self._first_line_done = False  # the first line's newline came and it was no response
        self._response: Decoded | None = None
        self._ended = False

    def feed(self, stream: int, data: bytes) -> tuple[Event, ...]:
        """Take one frame (stream 1 stdout, 2 stderr); the events it makes, in order.

        Only while the state is not ``DONE``: a done reader has read what it wanted.
        """
        if self.state is State.DONE:
            raise RuntimeError("the reader is done: feed it no more frames")
        if stream == 2:
            return self._stderr(data)
        stdout = self._stdout
        if self.state is State.LINGERING:
            # A serving runner's next line (fork mode: its ready line) can arrive while the
            # logs are awaited: keep it, never drop protocol bytes. A single-use runner's
            # further stdout has no reader: dropped.
            if not self._single_use and len(stdout) <= self._max_output_bytes:
                stdout += data
            return _NOTHING
        stdout += data
        if len(stdout) > self._max_output_bytes:
            self.state = State.DONE
            return (TooMuchOutput(len(stdout)),)
        if self._first_line_done or b"\n" not in data:
            return _NOTHING
        # The first line is final once its newline arrives: decode it once. Re-decoding it at
        # every later newline let a runner (a long line, then newlines one by one) hold the
        # event loop for seconds, past the call's timeout.
        response = _first_line(stdout)
        if response is None:
            self._first_line_done = True
            return _NOTHING
        self._response = response
        marked = bool(self._marker) and stdout[: stdout.find(b"\n")].rstrip().endswith(self._echo)
        self._marked = marked
        # Owed: the marker the response echoed; without one, a single-use runner's exit.
        owed = not self._marker_seen if marked else self._single_use
        self.state = State.LINGERING if owed else State.DONE
        return (ResponseLine(response),)

    def _stderr(self, data: bytes) -> tuple[Event, ...]:
        events = _NOTHING
        marker = self._marker
        if marker and not self._marker_seen:
            # Searched even when the logs are full and the bytes are dropped (a stderr flood).
            if marker in data or marker in self._tail + data[: len(marker)]:
                self._marker_seen = True
                events = (_MARKER_SEEN,)
                if self._marked:
                    self.state = State.DONE
            elif len(data) >= len(marker):
                self._tail = data[-len(marker) :]
            else:
                self._tail = (self._tail + data)[-len(marker) :]
        room = self._max_log_bytes - len(self._logs)
        if len(data) > room:
            self._logs_truncated = True
            data = data[: max(room, 0)]
        if data:
            self._logs += data
            events = (*events, LogChunk(data))
        return events

    def end(self) -> None:
        """The streams ended: the container is exiting; nothing more will come."""
        self._ended = True
        self.state = State.DONE

    def reply(self) -> Reply:
        """What came back, once reading stopped (done, or the wait for the logs cut short).

        With a response: the marker line and anything after it (a child's late writes) are cut
        from the logs; stdout after the response line is the ``rest`` when it is a fork
        runner's ready line (or its start), else it voids the response (:func:`interpret`
        then judges the whole stdout).
        """
        stdout, logs = bytes(self._stdout), bytes(self._logs)
        response = self._response
        rest = b""
        if response is not None:
            if self._marked and (at := logs.rfind(self._marker)) >= 0:
                logs = logs[:at]
            end = stdout.find(b"\n") + 1
            after = stdout[end:]
            if after.strip():
                if not self._single_use and (after.startswith(READY) or READY.startswith(after)):
                    stdout, rest = stdout[:end], after
                else:
                    response = None
        return Reply(
            stdout,
            logs.decode("utf-8", "replace"),
            self._logs_truncated,
            self._ended,
            response,
            rest=rest,
        )
