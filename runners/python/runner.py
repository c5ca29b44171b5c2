"""The executor runner for Python: one request on stdin, one response on the protocol fd.

Protocol (see executor/protocol.py and tests/vectors/): read
``{"schema_in", "schema_out", "input"}``, call ``execute(input)`` from the user module
(``/app/execute.py``, or ``$EXECUTOR_MODULE``), answer ``{"ok": true, "output": ...}`` or
``{"ok": false, "error": {"message", "code", "details"}}`` and exit 0. ``--serve`` (or
``EXECUTOR_SERVE=1``) answers newline-delimited requests, one line each, until EOF.

Standard library only. All start-up work (the user module's import included) happens before
stdin is read, so a pre-started runner answers its first request at once.
"""

from __future__ import annotations  # the base image may carry Python 3.8

import os
import sys


def _take_protocol_fds() -> tuple[int, int]:
    """Keep the original stdin and stdout for the protocol; give user code harmless ones.

    Done at the file-descriptor level before user code loads: fd 1 points at stderr, so
    print(), C extensions and child processes writing to fd 1 land on stderr; fd 0 reads
    /dev/null, so neither user code nor a child inheriting stdin can swallow requests. The
    private fds are not inherited.
    """
    out_fd = os.dup(1)
    os.dup2(2, 1)
    in_fd = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return in_fd, out_fd


_PROTOCOL_IN_FD, _PROTOCOL_FD = _take_protocol_fds()

import contextlib  # noqa: E402
import importlib.util  # noqa: E402  (after the fd swap on purpose)
import inspect  # noqa: E402
import json  # noqa: E402
import traceback  # noqa: E402

DEFAULT_MODULE = "/app/execute.py"
FUNCTION_NAME = "execute"


class _Failure(Exception):
    def __init__(self, code, message, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(_PROTOCOL_FD, view)
        view = view[written:]


def _error(code, message, details=None):
    error = {"message": message, "code": code}
    if details is not None:
        error["details"] = details
    return {"ok": False, "error": error}


def _encode(response) -> bytes:
    text = json.dumps(response, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: fall back to \u escapes
        return json.dumps(response, allow_nan=False, separators=(",", ":")).encode("ascii")


def _user_traceback(exc: BaseException) -> str:
    # Drop the runner's own frame(s) so the trace starts in user code.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _load():
    """Import the user module and return its function, or a _Failure to report per request."""
    path = os.environ.get("EXECUTOR_MODULE") or DEFAULT_MODULE
    if not os.path.isfile(path):
        return _Failure("NO_EXECUTE", f"user module {path} not found")
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the module can import its siblings
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            return _Failure("NO_EXECUTE", f"cannot load {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _Failure(
            "USER_ERROR",
            f"importing {path} failed: {type(exc).__name__}: {exc}",
            _user_traceback(exc),
        )
    function = getattr(module, FUNCTION_NAME, None)
    if not callable(function):
        return _Failure("NO_EXECUTE", f"{path} does not define a callable {FUNCTION_NAME}(input)")
    return function


class _Runner:
    def __init__(self):
        self.function = _load()
        self.loop = None
        if inspect.iscoroutinefunction(self.function):
            self._ensure_loop()  # pay for asyncio now, not on the first request

    def _ensure_loop(self):
        if self.loop is None:
            import asyncio

            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
        return self.loop

    def handle(self, raw: bytes) -> bytes:
        """One request in, one encoded response out.

        When the request carries a ``log_marker``, it is written to stderr as a line once the
        function has finished, before the response, and echoed in the response: the host then
        knows every log line written before it has arrived, without waiting for the exit.
        """
        self.marker = None
        response = self._respond(raw)
        marker = self.marker
        if marker is None:
            return response
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed or broken by user code
                stream.flush()
        os.write(2, marker.encode("utf-8", "replace") + b"\n")
        return response[:-1] + b',"log_marker":' + _encode(marker) + b"}"

    def _respond(self, raw: bytes) -> bytes:
        try:
            result = self._call(raw)
        except _Failure as failure:
            return _encode(_error(failure.code, failure.message, failure.details))
        try:
            return _encode({"ok": True, "output": result})
        except (TypeError, ValueError, RecursionError) as exc:
            message = f"the output cannot be encoded as JSON: {type(exc).__name__}: {exc}"
            return _encode(_error("OUTPUT_NOT_SERIALIZABLE", message))

    def _call(self, raw: bytes):
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: nesting deeper than the interpreter's limit (about 1000 levels).
            raise _Failure("BAD_REQUEST", f"the request is not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise _Failure("BAD_REQUEST", "the request must be a JSON object")
        marker = request.get("log_marker")
        self.marker = marker if isinstance(marker, str) else None
        if isinstance(self.function, _Failure):
            raise self.function
        try:
            result = self.function(request.get("input"))
            if inspect.isawaitable(result):
                result = self._ensure_loop().run_until_complete(result)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            message = f"{type(exc).__name__}: {exc}"
            raise _Failure("USER_ERROR", message, _user_traceback(exc)) from None
        return result


def main(argv) -> int:
    serve = "--serve" in argv or os.environ.get("EXECUTOR_SERVE") == "1"
    runner = _Runner()
    stdin = os.fdopen(_PROTOCOL_IN_FD, "rb")
    try:
        if serve:
            for line in stdin:
                if line.strip():
                    _write(runner.handle(line) + b"\n")
        else:
            _write(runner.handle(stdin.read()) + b"\n")
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
