"""The JSON wire protocol spoken between the host and every runner image.

One request is written to the runner's stdin::

    {"schema_in": {...} | null, "schema_out": {...} | null, "input": ...}

and exactly one response comes back on its stdout::

    {"ok": true, "output": ...}
    {"ok": false, "error": {"message": "...", "code": "USER_ERROR", "details": "..."}}

Optional extension: a request may carry ``"log_marker": "<token>"``. A runner that supports
it writes ``<token>`` as a line to stderr after the task has finished and before the response,
and echoes ``"log_marker": "<token>"`` in the response. The engine copies stdout and stderr
independently, so stderr written before the response can arrive after it; the marker tells
the host when every earlier log line has arrived, without waiting for the process to exit.
Runners that ignore it still conform (the host then reads a single-use container's streams to
their end, bounded). The host strips the marker from the logs.

Files back (optional extension): a request may carry ``"collect": {"path", "max_bytes",
"max_files"}``; the runner empties that directory before the call and answers with the regular
files left there, ``"files": {"rel/path": "<base64>"}``, or ``COLLECT_TOO_LARGE`` past a limit.

In serve mode (``--serve`` or ``EXECUTOR_SERVE=1``) requests and responses are compact JSON,
one per line, until stdin ends. In fork mode (``EXECUTOR_SERVE=fork``) the same, plus a
``{"ready": true}`` line whenever the runner can take the next request, optional request
fields ``timeout`` and ``max_output_bytes`` that the runner enforces, and the codes of
:data:`FORK_ERROR_CODES` (``docs/RUNNERS.md`` has the whole contract). ``tests/vectors/``
holds the conformance vectors that pin this protocol for every runner.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._errors import ProtocolError

__all__ = [
    "FORK_ERROR_CODES",
    "RUNNER_ERROR_CODES",
    "Collect",
    "ErrorInfo",
    "Request",
    "Response",
    "decode_request",
    "decode_response",
    "decode_response_files",
    "encode_request",
    "encode_response",
]

#: Codes a conforming runner reports in ``error.code``.
RUNNER_ERROR_CODES = (
    "BAD_REQUEST",  # the request could not be parsed
    "NO_TASK",  # no user module where the runner looks (a stock image has none of its own)
    "NO_EXECUTE",  # the user module lacks its function (or cannot be loaded as a module)
    "USER_ERROR",  # the user function raised; details hold the stack trace
    "OUTPUT_NOT_SERIALIZABLE",  # the function returned something JSON cannot carry
    "COLLECT_TOO_LARGE",  # files back: more than collect.max_bytes / max_files were left
    "COLLECT_FAILED",  # files back: the directory or a file name cannot be handled
)
#: Codes a fork-mode runner's parent reports about the task's process (docs/RUNNERS.md).
FORK_ERROR_CODES = (
    "TIMEOUT",  # the request's "timeout" passed: everything was killed
    "OOM_KILLED",  # the memory cgroup's OOM killer took the task's process
    "EXIT_NONZERO",  # the task's process ended without answering (exit_code)
    "PROTOCOL_ERROR",  # the task's process wrote something other than one response
    "OUTPUT_TOO_LARGE",  # the response passed the request's "max_output_bytes"
)


class ErrorInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ``error`` object of a failed response.

    ``exit_code`` is set by a fork-mode runner when the task's process ended without
    answering (``EXIT_NONZERO``, ``OOM_KILLED``).
    """

    message: str
    code: str = "ERROR"
    details: str | None = None
    exit_code: int | None = None


class Collect(msgspec.Struct, frozen=True):
    """Files back: the directory whose regular files come back, and the limits.

    ``max_bytes`` bounds the files' sizes plus their relative paths' lengths (UTF-8 bytes).
    """

    path: str
    max_bytes: int
    max_files: int


class Request(msgspec.Struct, frozen=True, omit_defaults=True):
    """One call: the schemas (for the runner's information) and the input, always written;
    the optional fields only when set.

    The host encodes every request from this Struct, its schemas pre-encoded as
    ``msgspec.Raw`` once per executor.
    """

    schema_in: Any
    schema_out: Any
    input: Any
    log_marker: str | None = None
    timeout: float | None = None
    max_output_bytes: int | None = None
    collect: Collect | None = None


class Response(msgspec.Struct, frozen=True, omit_defaults=True):
    """One answer: ``ok`` with ``output`` (and ``files`` when collected), or not ``ok`` with
    ``error``. ``files`` maps relative paths to contents (base64 on the wire)."""

    ok: bool
    output: Any = None
    error: ErrorInfo | None = None
    log_marker: str | None = None
    files: dict[str, bytes] | None = None
    #: The runner's measurement of the call (``cpu_time``, ``peak_memory``, ``wall_time``).
    usage: dict[str, float | int | None] | None = None


class _RawResponse(msgspec.Struct, frozen=True):
    ok: bool
    output: msgspec.Raw = msgspec.Raw(b"null")
    error: ErrorInfo | None = None
    files: dict[str, bytes] | None = None


class _UsageOnly(msgspec.Struct, frozen=True):
    usage: dict[str, float | int | None] | None = None


_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(Request)
_response_decoder = msgspec.json.Decoder(Response)
_raw_response_decoder = msgspec.json.Decoder(_RawResponse)
_usage_decoder = msgspec.json.Decoder(_UsageOnly)
#: What msgspec raises for bytes that are not a JSON document of the expected shape: invalid
#: UTF-8 inside a string surfaces as UnicodeDecodeError, nesting past the interpreter's
#: recursion limit as RecursionError. Both are the peer's fault: a ProtocolError.
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def encode_request(request: Request) -> bytes:
    """Encode a request as compact JSON (no trailing newline)."""
    return _encoder.encode(request)


def encode_response(response: Response) -> bytes:
    """Encode a response as compact JSON (no trailing newline)."""
    return _encoder.encode(response)


def decode_request(data: bytes | str) -> Request:
    """Decode a request; raise :class:`ProtocolError` when it is not one."""
    try:
        return _request_decoder.decode(data)
    except _UNDECODABLE as exc:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        raise ProtocolError(f"not a protocol request: {exc}", received=raw) from exc


def decode_response(data: bytes | str) -> Response:
    """Decode a response; raise :class:`ProtocolError` when it is not one."""
    try:
        response = _response_decoder.decode(data)
    except _UNDECODABLE as exc:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        raise ProtocolError(
            f"the runner's stdout is not a protocol response: {exc}", received=raw
        ) from exc
    _check(response.ok, response.error, data)
    return response


def decode_response_files(
    data: bytes,
) -> tuple[bool, msgspec.Raw, ErrorInfo | None, dict[str, bytes] | None]:
    """Decode a response keeping ``output`` as undecoded JSON (for typed decoding later), with
    the collected ``files`` (decoded from base64; ``None`` when the response has none).

    Raises :class:`ProtocolError` when it is not one.
    """
    try:
        response = _raw_response_decoder.decode(data)
    except _UNDECODABLE as exc:
        raise ProtocolError(
            f"the runner's stdout is not a protocol response: {exc}", received=bytes(data)
        ) from exc
    _check(response.ok, response.error, data)
    return response.ok, response.output, response.error, response.files


def decode_usage(data: bytes) -> dict[str, float | int | None] | None:
    """The ``usage`` object of a response (``cpu_time``, ``peak_memory``, ``wall_time``), or
    None when the runner sent none or it is not one (a runner that predates it)."""
    try:
        return _usage_decoder.decode(data).usage
    except (*_UNDECODABLE, msgspec.ValidationError):
        return None


def _check(ok: bool, error: ErrorInfo | None, data: bytes | str) -> None:
    if not ok and error is None:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        raise ProtocolError(
            'the runner answered "ok": false without an "error" object', received=raw
        )
