"""The executor runner for Python: one request on stdin, one response on the protocol fd.

Protocol (see executor/protocol.py and tests/vectors/): read
``{"schema_in", "schema_out", "input"}``, call ``execute(input)`` from the user module
(``/app/execute.py``, or ``$EXECUTOR_MODULE``; the image ships none: ``NO_TASK`` without one),
answer ``{"ok": true, "output": ...}`` or
``{"ok": false, "error": {"message", "code", "details"}}`` and exit 0. ``--serve`` (or
``EXECUTOR_SERVE=1``) answers newline-delimited requests, one line each, until EOF.

A request may carry ``"collect": {"path", "max_bytes", "max_files"}``: the runner empties that
directory before the call and answers with the regular files the task left there,
``"files": {"rel/path": "<base64>"}`` (docs/RUNNERS.md, "Files back").

``EXECUTOR_SERVE=fork`` (or ``--fork``) is fork mode, for a container's init process only: the
runner imports the module once and runs each call in a freshly forked process, cleaning the
container between calls (docs/RUNNERS.md, "Fork mode").

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

import _signal  # noqa: E402  (the C functions: no enum conversions in a task process)
import array  # noqa: E402
import contextlib  # noqa: E402
import errno  # noqa: E402
import fcntl  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402  (after the fd swap on purpose)
import json  # noqa: E402
import math  # noqa: E402
import mmap  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402  (here: imported in a fork-mode task process, ~110 faults)
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

# Bound here, so that a task replacing them in builtins changes nothing in the runner's code.
from builtins import isinstance, len  # noqa: E402, UP029
from collections.abc import Awaitable  # noqa: E402

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


def _json_encoder(ensure_ascii: bool):
    """A compact, strict JSON encoder (``json.dumps(..., allow_nan=False, separators=(",",
    ":"))``) made of references taken now, before user code is imported: a task that replaces
    ``json.dumps``, ``json.JSONEncoder`` or ``builtins.len`` still gets its answer encoded. It
    calls the C encoder directly, without building a JSONEncoder per response."""
    import json.encoder as impl

    strings = impl.encode_basestring_ascii if ensure_ascii else impl.encode_basestring
    make = impl.c_make_encoder
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(
            ensure_ascii=ensure_ascii, allow_nan=False, separators=(",", ":")
        ).encode
    default = json.JSONEncoder().default  # raises TypeError, as json.dumps does
    join = "".join

    def encode(value) -> str:
        return join(make({}, default, strings, None, ":", ",", False, False, False)(value, 0))

    return encode


_ENCODE_TEXT = _json_encoder(ensure_ascii=False)
_ENCODE_ASCII = _json_encoder(ensure_ascii=True)
_STRING_TEXT = json.encoder.encode_basestring
_STRING_ASCII = json.encoder.encode_basestring_ascii
_RAW_DECODE = json.JSONDecoder().raw_decode
_BLANK_JSON = json.decoder.WHITESPACE.match
_DETECT_ENCODING = json.detect_encoding


def _encode(response) -> bytes:
    text = _ENCODE_TEXT(response)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: fall back to \u escapes
        return _ENCODE_ASCII(response).encode("ascii")


def _encode_string(text: str) -> bytes:
    """``_encode(text)`` for a str, without building an encoder (the fork-mode call path)."""
    try:
        return _STRING_TEXT(text).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: fall back to \u escapes
        return _STRING_ASCII(text).encode("ascii")


def _decode(raw):
    """``json.loads(raw)`` through references taken before user code is imported."""
    if not isinstance(raw, str):
        raw = bytes(raw).decode(_DETECT_ENCODING(raw), "surrogatepass")
    # JSONDecoder.decode itself, after raw_decode, compares with len(): done here instead.
    value, end = _RAW_DECODE(raw, _BLANK_JSON(raw, 0).end())
    end = _BLANK_JSON(raw, end).end()
    if end != len(raw):
        raise json.JSONDecodeError("Extra data", raw, end)
    return value


#: This file's name in its code objects: the source's, also when run from runner.pyc.
_SOURCE = (lambda: None).__code__.co_filename


def _user_traceback(exc: BaseException) -> str:
    # Drop the runner's own frame(s) so the trace starts in user code.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _SOURCE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _load():
    """Import the user module and return its function, or a _Failure to report per request."""
    path = os.environ.get("EXECUTOR_MODULE") or DEFAULT_MODULE
    if not os.path.isfile(path):
        return _Failure(
            "NO_TASK",
            f"no task module at {path}: the stock runner image has no task of its own. Put "
            f"yours there: ContainerConfig(image, files={{{path!r}: SOURCE}}), a mount, or an "
            "image built FROM this one; or point EXECUTOR_MODULE at it",
        )
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


# inspect, without importing it: ~0.9 MB of the runner's heap (inspect pulls in ast, dis,
# enum, tokenize...), which fork mode's parent copies (page tables) at every fork and every
# task process tears down again. A module importing inspect itself changes nothing here.
_CO_COROUTINE = 0x80
_CO_ITERABLE_COROUTINE = 0x100


def _is_awaitable(value) -> bool:
    """``inspect.isawaitable`` (the same three checks, unchanged since Python 3.5)."""
    return (
        isinstance(value, types.CoroutineType)
        or (
            isinstance(value, types.GeneratorType)
            and bool(value.gi_code.co_flags & _CO_ITERABLE_COROUTINE)
        )
        or isinstance(value, Awaitable)
    )


def _is_coroutine_function(function) -> bool:
    """``inspect.iscoroutinefunction``: decided here for a plain function (its code's flag),
    by inspect itself for anything else (partials, methods, marked callables)."""
    if type(function) is types.FunctionType and "_is_coroutine_marker" not in function.__dict__:
        return bool(function.__code__.co_flags & _CO_COROUTINE)
    import inspect

    return inspect.iscoroutinefunction(function)


class _Runner:
    def __init__(self, fork: bool = False):
        self.function = _load()
        self.loop = None
        self.marker = None
        self.files = None
        if _is_coroutine_function(self.function):
            if fork:
                import asyncio  # noqa: F401  (imported now; each task process makes its own loop)
            else:
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
        _flush_stdio()  # sys.stdout may be closed, broken or replaced by user code
        os.write(2, marker.encode("utf-8", "replace") + b"\n")
        return response[:-1] + b',"log_marker":' + _encode(marker) + b"}"

    def _respond(self, raw: bytes) -> bytes:
        return self.respond_to(lambda: self._invoke(self.parse(raw)))

    def respond_to(self, call) -> bytes:
        """Encode what ``call()`` returns as an ok response, or the _Failure it raises.

        The files collected during the call (``self.files``, set by _invoke) follow the
        output: every response still starts with ``{"ok":true,"output":``.
        """
        self.files = None
        before = _usage_now()
        try:
            result = call()
        except _Failure as failure:
            return _encode(_error(failure.code, failure.message, failure.details))
        response = {"ok": True, "output": result}
        if self.files is not None:
            response["files"] = self.files
        response["usage"] = _usage_since(before)
        try:
            return _encode(response)
        except (TypeError, ValueError, RecursionError) as exc:
            message = f"the output cannot be encoded as JSON: {type(exc).__name__}: {exc}"
            return _encode(_error("OUTPUT_NOT_SERIALIZABLE", message))

    def parse(self, raw: bytes) -> dict:
        """The request as a dict (sets ``self.marker``); a _Failure when it is not one."""
        try:
            request = _decode(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: nesting deeper than the interpreter's limit (about 1000 levels).
            raise _Failure("BAD_REQUEST", f"the request is not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise _Failure("BAD_REQUEST", "the request must be a JSON object")
        marker = request.get("log_marker")
        self.marker = marker if isinstance(marker, str) else None
        return request

    def _invoke(self, request: dict):
        if isinstance(self.function, _Failure):
            raise self.function
        collect = _collect_spec(request.get("collect"))
        if collect is not None:
            _empty_collect_dir(collect[0])  # no earlier call's files come back
        try:
            result = self.function(request.get("input"))
            if _is_awaitable(result):
                result = self._ensure_loop().run_until_complete(result)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            message = f"{type(exc).__name__}: {exc}"
            raise _Failure("USER_ERROR", message, _user_traceback(exc)) from None
        if collect is not None:
            self.files = _collect(*collect)
        return result


# --- files back (docs/RUNNERS.md, "Files back") ------------------------------------------------

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _collect_spec(value):
    """``(path, max_bytes, max_files)`` from a request's "collect", None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Failure(
            "BAD_REQUEST", '"collect" must be an object {"path", "max_bytes", "max_files"}'
        )
    path = value.get("path")
    if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == "":
        raise _Failure("BAD_REQUEST", '"collect.path" must be an absolute directory path')
    limits = []
    for name in ("max_bytes", "max_files"):
        limit = value.get(name)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise _Failure("BAD_REQUEST", f'"collect.{name}" must be an integer (>= 0)')
        limits.append(limit)
    return path, limits[0], limits[1]


def _empty_collect_dir(path: str) -> None:
    """Create ``path`` if needed and remove everything in it (symlinks are not followed)."""
    try:
        os.makedirs(path, exist_ok=True)
        fd = os.open(path, _OPEN_DIR)
        try:
            for name in os.listdir(fd):
                _remove_entry(fd, name)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _Failure(
            "COLLECT_FAILED", f"cannot prepare the collect directory {path}: {exc}"
        ) from None


def _collect(path: str, max_bytes: int, max_files: int) -> dict:
    """The regular files under ``path`` as {relative path: base64}, never following a symlink.

    ``max_bytes`` bounds the files' sizes plus their relative paths' lengths (UTF-8 bytes).
    """
    import base64

    files = {}
    used = 0

    def too_large(what: str):
        return _Failure(
            "COLLECT_TOO_LARGE",
            f"the task left {what} in {path} (max_bytes={max_bytes}, max_files={max_files})",
        )

    def walk(dir_fd: int, prefix: str) -> None:
        nonlocal used
        for name in sorted(os.listdir(dir_fd)):
            relative = prefix + name
            try:
                encoded = relative.encode("utf-8")
            except UnicodeEncodeError:
                raise _Failure(
                    "COLLECT_FAILED", f"a file name in {path} is not valid UTF-8: {relative!r}"
                ) from None
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_mode & 0o170000) == 0o040000:
                sub = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
                try:
                    walk(sub, relative + "/")
                finally:
                    os.close(sub)
                continue
            if (st.st_mode & 0o170000) != 0o100000:
                continue  # symlinks, FIFOs, sockets, devices: regular files only
            if _CONTROL.search(relative):
                raise _Failure(
                    "COLLECT_FAILED",
                    f"a file name in {path} holds a control character: {relative!r}",
                )
            if len(files) >= max_files:
                raise too_large(f"more than {max_files} files")
            room = max_bytes - used - len(encoded)
            fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
            try:
                if (os.fstat(fd).st_mode & 0o170000) != 0o100000:
                    continue  # replaced since the stat
                chunks = []
                size = 0
                while size <= room:
                    chunk = os.read(fd, min(max(room + 1 - size, 1), 1 << 20))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
            if size > room:
                raise too_large(f"more than {max_bytes} bytes")
            used += len(encoded) + size
            files[relative] = base64.b64encode(b"".join(chunks)).decode("ascii")

    try:
        fd = os.open(path, _OPEN_DIR)
        try:
            walk(fd, "")
        finally:
            os.close(fd)
    except OSError as exc:
        raise _Failure("COLLECT_FAILED", f"cannot collect the files in {path}: {exc}") from None
    except RecursionError:
        raise _Failure(
            "COLLECT_FAILED", f"the directories in {path} are nested too deeply"
        ) from None
    return files


# --- fork mode (docs/RUNNERS.md, "Fork mode") --------------------------------------------------
#
# The runner is the container's init (PID 1) and never runs a call itself. After each call's
# cleanup it forks the next call's task process (the "spare") from its post-import state; the
# spare waits for its request, so a call costs no fork. Request bytes reach the spare through a
# shared anonymous mapping and its answer comes back on a private pipe: the first line (the
# request's timeout, max_output_bytes and log_marker, written before any user code runs), then
# the response. The parent copies request and response bytes only between mappings it zeroes
# after each call, never into its own heap, so a later task cannot dig an earlier call's data
# out of the memory it inherits. While user code may run, the protocol descriptors are in no
# process's descriptor table at all: they are parked in flight on a private socket pair
# (gVisor lets any process of the same uid open /proc/1/fd/N, PR_SET_DUMPABLE or not), and
# taken back only once every other process is confirmed dead.

#: The spec's six, plus the stop signals: gVisor does not shield its init from signals the way
#: Linux does, and a stop signal there would freeze the parent (SIGSTOP itself cannot be
#: ignored: see docs/RUNNERS.md).
_IGNORED_SIGNALS = tuple(
    getattr(signal, name)
    for name in (
        *("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"),
        *("SIGTSTP", "SIGTTIN", "SIGTTOU"),
    )
)
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_READY = b'{"ready":true,"runner":"python"}\n'
_CLEANUP_SECONDS = 5.0
_EXIT_NOT_PID1 = 2
_EXIT_UNCLEAN = 3
_EXIT_RUNNER_FAILED = 70  # a task process whose runner code failed (EX_SOFTWARE)
#: What every response the task process encodes starts with (compact, "ok" first).
_RESPONSE_PREFIXES = (b'{"ok":true,"output":', b'{"ok":false,"error":{')
_IPC_RMID = 0
_IPC_STAT = 2
#: SHM_INFO, SEM_INFO, MSG_INFO, and where each answer keeps the number of objects in use.
_IPC_INFO = {"shm": (14, 0), "sem": (19, 7), "msg": (12, 0)}
_PAGE = mmap.PAGESIZE
_CHUNK = 1 << 20
_ZEROS = bytes(64 * 1024)
_BLANK = re.compile(rb"[ \t\r]*")
_WARM_UP = (
    b'{"schema_in":null,"schema_out":null,"input":{"a":[1,2.5,"b\\u00e9",true,null],"c":{}},'
    b'"timeout":1,"max_output_bytes":1,"log_marker":"m"}'
)

#: Descriptors the next forked child closes first thing (see _after_fork_in_child).
_CHILD_CLOSES: list[int] = []


class _Unclean(Exception):
    """Cleanup cannot be confirmed: the parent exits with status 3."""


def _fork_log(message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"executor runner (fork mode): {message}\n".encode("utf-8", "replace"))


def _after_fork_in_child() -> None:
    """Close the protocol (and other private) descriptors in a child of the parent.

    Registered before the user module is imported, so it runs before any at-fork hook the
    module registers: no user code ever runs while the protocol stream is open. In a task
    process the list is empty, so the task's own forks are not affected.
    """
    # Plain try/except, no context manager objects: every page a task process writes is a
    # copy-on-write fault (several microseconds here), so its set-up allocates little.
    fds = _CHILD_CLOSES[:]
    _CHILD_CLOSES.clear()
    for fd in fds:
        try:  # noqa: SIM105  (a context manager is one more object to allocate)
            os.close(fd)
        except OSError:
            pass


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105  (as in _after_fork_in_child)
            stream.flush()
        except Exception:  # closed, broken or replaced by user code
            pass


def _write_fd(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_views(fd: int, parts) -> None:
    """Write every buffer in ``parts`` with writev: mapped bytes go out without a heap copy."""
    views = [memoryview(part) for part in parts if len(part)]
    while views:
        written = os.writev(fd, views)
        while written:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


def _log_marker(marker: str) -> None:
    with contextlib.suppress(OSError):
        _write_fd(2, marker.encode("utf-8", "replace") + b"\n")


class _Libc:
    """prctl and System V IPC through ctypes; without ctypes each degrades (logged once)."""

    def __init__(self):
        try:
            import ctypes

            self._c = ctypes
            self._libc = ctypes.CDLL(None, use_errno=True)
            self._info = None
            # One foreign function with its argument types, built once: a task process
            # calls it twice, and converting arguments per call touched more memory.
            ulong = ctypes.c_ulong
            self._prctl = self._libc.prctl
            self._prctl.argtypes = (ctypes.c_int, ulong, ulong, ulong, ulong)
            self._prctl.restype = ctypes.c_int
        except (ImportError, OSError) as exc:
            self._c = self._libc = None
            _fork_log(
                f"ctypes is unavailable ({type(exc).__name__}: {exc}): the parent stays "
                "dumpable (ptrace-able), task processes get no parent-death signal, and "
                "System V IPC objects cannot be removed"
            )

    @property
    def available(self) -> bool:
        return self._libc is not None

    def prctl(self, option: int, value: int) -> bool:
        if self._libc is None:
            return False
        return self._prctl(option, value, 0, 0, 0) == 0

    def _ctl(self, kind: str, ident: int, command: int, buffer) -> int:
        c, libc = self._c, self._libc
        if kind == "sem":
            return libc.semctl(c.c_int(ident), c.c_int(0), c.c_int(command), buffer)
        function = libc.shmctl if kind == "shm" else libc.msgctl
        return function(c.c_int(ident), c.c_int(command), buffer)

    def _raise(self, what: str):
        err = self._c.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")

    def ipc_remove(self, kind: str, ident: int) -> None:
        gone = (errno.EINVAL, errno.EIDRM)
        if self._ctl(kind, ident, _IPC_RMID, None) != 0 and self._c.get_errno() not in gone:
            self._raise(f"cannot remove System V {kind} {ident}")

    def ipc_in_use(self, kind: str) -> int | None:
        """How many objects of this kind exist (None: the *_INFO call failed)."""
        command, index = _IPC_INFO[kind]
        if self._info is None:
            self._info = self._c.create_string_buffer(256)
        if self._ctl(kind, 0, command, self._info) < 0:
            return None
        return int.from_bytes(self._info.raw[4 * index : 4 * index + 4], sys.byteorder, signed=True)

    def ipc_exists(self, kind: str, ident: int, buffer) -> bool:
        return self._ctl(kind, ident, _IPC_STAT, buffer) == 0

    def ipc_newest_id(self, kind: str) -> int:
        """Create and remove a private object: ids are handed out upwards, so every id in use
        is below this one (gVisor: no /proc/sysvipc to list them)."""
        c, libc = self._c, self._libc
        if kind == "shm":
            ident = libc.shmget(c.c_int(0), c.c_size_t(_PAGE), c.c_int(0o600))
        elif kind == "sem":
            ident = libc.semget(c.c_int(0), c.c_int(1), c.c_int(0o600))
        else:
            ident = libc.msgget(c.c_int(0), c.c_int(0o600))
        if ident < 0:
            self._raise(f"cannot create a System V {kind} object to bound the search")
        self.ipc_remove(kind, ident)
        return ident

    def stat_buffer(self):
        return self._c.create_string_buffer(512)


class _SysvIpc:
    """Finds and removes the System V IPC objects of the container's IPC namespace."""

    def __init__(self, libc: _Libc):
        self.libc = libc
        self.proc = os.path.isfile("/proc/sysvipc/shm")
        self.warned = False

    def clean(self, deadline: float) -> None:
        for kind in ("shm", "sem", "msg"):
            ids = self._ids(kind, deadline)
            if not ids:
                continue
            if not self.libc.available:
                raise _Unclean(f"System V {kind} objects {ids[:5]} are left and ctypes is missing")
            for ident in ids:
                self.libc.ipc_remove(kind, ident)
            left = self._ids(kind, deadline)
            if left:
                raise _Unclean(f"System V {kind} objects {left[:5]} are left")

    def _ids(self, kind: str, deadline: float) -> list[int]:
        # One *_INFO call tells whether any object exists (the usual case: none); the
        # listing only when one does.
        in_use = self.libc.ipc_in_use(kind) if self.libc.available else None
        if in_use is not None and in_use <= 0:
            return []
        if self.proc:
            fd = os.open(f"/proc/sysvipc/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = b""
                while chunk := os.read(fd, 65536):
                    data += chunk
            finally:
                os.close(fd)
            return [int(line.split()[1]) for line in data.splitlines()[1:] if line.strip()]
        if in_use is None:
            if not self.warned:
                _fork_log("System V IPC objects cannot be listed here: they are not cleaned up")
                self.warned = True
            return []
        found = []
        buffer = self.libc.stat_buffer()
        for ident in range(self.libc.ipc_newest_id(kind) - 1, -1, -1):
            if self.libc.ipc_exists(kind, ident, buffer):
                found.append(ident)
                if len(found) >= in_use:
                    break
            if ident % 4096 == 0 and time.monotonic() > deadline:
                raise _Unclean(f"{in_use} System V {kind} objects are left; found {len(found)}")
        return found


class _OomCounter:
    """The memory cgroup's ``oom_kill`` counter (v2 memory.events, v1 memory.oom_control)."""

    PATHS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")

    def __init__(self):
        self.fd = None
        for path in self.PATHS:
            try:
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            if self.read() is not None:
                break
            os.close(self.fd)
            self.fd = None

    def read(self) -> int | None:
        if self.fd is None:
            return None
        try:
            data = os.pread(self.fd, 4096, 0)
        except OSError:
            return None
        for line in data.splitlines():
            if line.startswith(b"oom_kill "):
                return int(line.split()[1])
        return None


class _Buffer:
    """A growable anonymous mapping. Shared: the request handoff to the spare; private: the
    protocol input and the task's channel. Zeroed after each call."""

    def __init__(self, size: int, shared: bool):
        self.shared = shared
        self.generation = 0
        self.used = 0
        self.can_remove = shared
        self.short = False
        self._map(size)

    def _map(self, size: int) -> None:
        flags = mmap.MAP_SHARED if self.shared else mmap.MAP_PRIVATE
        self.map = mmap.mmap(-1, size, flags=flags)
        self.view = memoryview(self.map)
        if not self.shared:
            # Not in any task process at all: the parent's writes to it while a spare lives
            # are no copy-on-write faults, and no task can read what it held.
            with contextlib.suppress(OSError, AttributeError):
                self.map.madvise(mmap.MADV_DONTFORK)

    def room(self, needed: int) -> None:
        """At least ``needed`` free bytes after ``used``; a bigger mapping replaces this one."""
        size = len(self.map)
        if size - self.used >= needed:
            return
        while size - self.used < needed:
            size *= 2
        old_map, old_view = self.map, self.view
        self._map(size)
        self.view[: self.used] = old_view[: self.used]
        self.generation += 1
        old_view.release()
        # Unmapped: its pages go back to the kernel, nothing to zero. While a view of it lives
        # (an earlier answer's), close() refuses: then it goes with the last view.
        with contextlib.suppress(BufferError):
            old_map.close()

    def read_from(self, fd: int) -> int:
        self.room(_CHUNK if self.used >= _CHUNK else 65536)
        free = len(self.map) - self.used
        count = os.readv(fd, [self.view[self.used :]])
        self.used += count
        self.short = count < free  # a pipe read short of the room: the pipe is empty now
        return count

    def put(self, data) -> None:
        self.used = 0
        self.room(len(data))
        self.view[: len(data)] = data
        self.used = len(data)

    def consume(self, count: int) -> None:
        """Drop the first ``count`` bytes, keep the rest at the front, zero what was freed."""
        rest = self.used - count
        if rest:
            self.map.move(0, count, rest)
        self.zero(rest, self.used)
        self.used = rest

    def clear(self) -> None:
        self.zero(0, self.used)
        self.used = 0

    def zero(self, start: int, end: int) -> None:
        if end <= start:
            return
        whole = -(-start // _PAGE) * _PAGE  # the first page boundary at or after start
        if end - whole >= 4 * _PAGE:
            option = mmap.MADV_REMOVE if self.shared else mmap.MADV_DONTNEED
            if not self.shared or self.can_remove:
                length = min(-(-end // _PAGE) * _PAGE, len(self.map)) - whole
                try:
                    self.map.madvise(option, whole, length)
                    end = whole
                except OSError:
                    self.can_remove = False  # gVisor: no MADV_REMOVE; write zeros instead
        while start < end:
            step = min(end - start, len(_ZEROS))
            self.view[start : start + step] = _ZEROS[:step]
            start += step


class _Spare:
    """The next call's task process: forked, set up, waiting for its request."""

    __slots__ = ("channel", "generation", "go", "pid")

    def __init__(self, pid, go, channel, generation):
        self.pid = pid
        self.go = go
        self.channel = channel
        self.generation = generation

    def close(self) -> None:
        for fd in (self.go, self.channel):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.go = self.channel = None


def _ignore_signal(signum, frame) -> None:
    """SIGCHLD handler: the C-level handler writes to the wakeup fd, which does the work."""


def _raw_handler(handler):
    """A disposition as _signal.signal takes it (None: set outside Python, restored as default)."""
    if handler is None:
        return int(signal.SIG_DFL)
    return int(handler) if isinstance(handler, signal.Handlers) else handler


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _wipe_paths() -> list[str]:
    configured = os.environ.get("EXECUTOR_FORK_WIPE")
    paths = (configured if configured is not None else "/tmp:/dev/shm").split(":")
    wipe = []
    for path in paths:
        if path and not os.path.isabs(path):
            _fork_log(f"EXECUTOR_FORK_WIPE: ignoring {path!r}, not an absolute path")
        elif path and path not in wipe:
            wipe.append(path)
    if os.path.isdir("/dev/mqueue") and "/dev/mqueue" not in wipe:
        wipe.append("/dev/mqueue")
    return wipe


def _remove_entry(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except (IsADirectoryError, PermissionError):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (st.st_mode & 0o170000) != 0o040000:
            raise
    # A directory, perhaps made unreadable by the task: every process is dead, so no race.
    with contextlib.suppress(OSError):
        os.chmod(name, 0o700, dir_fd=dir_fd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            _remove_entry(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _wipe(path: str) -> None:
    """Remove everything under ``path`` (not ``path`` itself) and confirm it is empty."""
    try:
        if not os.listdir(path):
            return
    except FileNotFoundError:
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in os.listdir(fd):
            _remove_entry(fd, name)
        left = os.listdir(fd)
    finally:
        os.close(fd)
    if left:
        raise _Unclean(f"{path} still holds {sorted(left)[:5]}")


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_all(deadline: float, wakeup: int) -> None:
    """SIGKILL every other process of the PID namespace and reap until none is left.

    Between two rounds it waits on ``wakeup`` (written on SIGCHLD), so a process whose
    teardown takes a few milliseconds is reaped the moment it ends, not after a sleep."""
    poller = select.poll()
    poller.register(wakeup, select.POLLIN)
    while True:
        _reap()  # first: kill() succeeds on a zombie, and a reaped one is gone for good
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return  # nothing but this process can be signalled, so nothing else exists
        except PermissionError:
            pass  # only processes we may not signal are left (another uid): wait, then fail
        if time.monotonic() > deadline:
            raise _Unclean("processes are left that cannot be killed")
        poller.poll(10)  # the next SIGCHLD, or 10 ms
        with contextlib.suppress(BlockingIOError):
            while os.read(wakeup, 4096):
                pass


def _set_oom_score_adj(value: bytes) -> None:
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, value)
    except OSError:
        pass
    finally:
        os.close(fd)


def _control(request: dict) -> tuple:
    """The fields the parent enforces, checked before any user code runs."""
    timeout = request.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise _Failure("BAD_REQUEST", '"timeout" must be a number of seconds (>= 0) or null')
        timeout = None if math.isinf(timeout) else timeout
    limit = request.get("max_output_bytes")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise _Failure("BAD_REQUEST", '"max_output_bytes" must be an integer (>= 0)')
    # A hint from the host, not enforced: another call waits for this container.
    return timeout, limit, request.get("queued") is True


_INT_REPR = int.__repr__  # what json's encoder uses for numbers, bound before the import
_FLOAT_REPR = float.__repr__


def _control_line(timeout, limit, queued, marker) -> bytes:
    """The control line as ``_encode`` writes the dict, without building an encoder."""
    timeout = b"null" if timeout is None else _number(timeout)
    limit = b"null" if limit is None else _number(limit)
    marker = b"null" if marker is None else _encode_string(marker)
    return (
        b'{"timeout":'
        + timeout
        + b',"max_output_bytes":'
        + limit
        + (b',"queued":true' if queued else b"")
        + b',"log_marker":'
        + (marker + b"}\n")
    )


def _number(value) -> bytes:
    return (_INT_REPR if isinstance(value, int) else _FLOAT_REPR)(value).encode("ascii")


class _ForkServer:
    def __init__(self):
        self.libc = _Libc()
        self.libc.prctl(_PR_SET_DUMPABLE, 0)
        os.register_at_fork(after_in_child=_after_fork_in_child)  # before the user's hooks
        self.runner = _Runner(fork=True)
        _flush_stdio()
        # What a task process starts with: the dispositions right after the import.
        watched = (*_IGNORED_SIGNALS, signal.SIGCHLD)
        # As plain ints and handlers for _signal.signal: signal.signal's enum conversions
        # cost a task process ~60 copy-on-write faults (ten calls) on its way to the request.
        self.task_signals = tuple(
            (int(sig), _raw_handler(signal.getsignal(sig))) for sig in watched
        )
        for sig in _IGNORED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if self.libc.available and not self.libc.prctl(_PR_SET_DUMPABLE, 0):
            _fork_log("prctl(PR_SET_DUMPABLE, 0) failed: the parent stays ptrace-able")
        threading = sys.modules.get("threading")
        if threading is not None and threading.active_count() > 1:
            _fork_log("the module started threads at import; task processes will not have them")
        # SIGCHLD wakes the call's poll through a self-pipe, for the task process's exit and
        # for its stop (it stops itself once its answer is written: see task_process). A
        # pidfd would report the exit only, and waiting for the exit of a forked Python
        # process (its address space torn down) took 2-3 ms on this machine's VMs.
        self.wakeup = os.pipe()
        for fd in self.wakeup:
            os.set_blocking(fd, False)
        signal.signal(signal.SIGCHLD, _ignore_signal)
        signal.set_wakeup_fd(self.wakeup[1], warn_on_full_buffer=False)
        self.oom = _OomCounter()
        self.oom_before = None  # the counter as read after the last cleanup (off the call path)
        self.ipc = _SysvIpc(self.libc)
        self.wipe = _wipe_paths()
        self.pending = _Buffer(1 << 16, shared=False)  # bytes read from the protocol stdin
        self.request = _Buffer(4 << 20, shared=True)  # the request, handed to the spare
        self.channel = _Buffer(1 << 16, shared=False)  # what the task process wrote
        self.protocol = [_PROTOCOL_IN_FD, _PROTOCOL_FD]  # empty while parked
        self.parking = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.private = [*(sock.fileno() for sock in self.parking), *self.wakeup]
        if self.oom.fd is not None:
            self.private.append(self.oom.fd)
        self.spare: _Spare | None = None
        # The last call's request said another call waits (see cleanup); its spare then skips
        # the warm-up (wait_request): the request is on its way, and the warm-up's run through
        # the call's path would be CPU spent twice on a saturated machine.
        self.queued = False
        # One poller for every call (the wakeup fd always in it, the call's channel added):
        # what the parent allocates while a task process shares its pages costs faults.
        self.poller = select.poll()
        self.poller.register(self.wakeup[0], select.POLLIN)
        gc.freeze()  # the post-import heap: not scanned (nor copied on write) by task GCs

    # --- the loop ---------------------------------------------------------------------------

    def serve(self) -> int:
        try:
            self.cleanup()  # the import may have left processes or files: every call starts alike
            # Ready first, then the spare: the fork overlaps the host's next write, and the
            # write runs while no other process shares (and copy-on-write faults) its pages.
            self.send([_READY])
            self.fork_spare()
            while (length := self.read_request()) is not None:
                if length == 0:
                    continue
                self.park()
                answer = self.call(length)
                if self.queued:  # another call waits: the answer and the ready line in one write
                    self.cleanup(answer, ready=True)
                else:
                    self.cleanup(answer)
                    self.send([_READY])
                # The answer's views of the channel buffer go now: the next call may replace
                # that buffer (room), and a mapping with views cannot be closed.
                answer = None
                self.fork_spare()
        except BrokenPipeError:  # the host closed our stdout: nobody to answer
            pass
        except _Unclean as exc:
            _fork_log(
                f"cleanup could not be confirmed within {_CLEANUP_SECONDS:g} s ({exc}); "
                f"exiting with status {_EXIT_UNCLEAN}"
            )
            self.stop()
            return _EXIT_UNCLEAN
        self.stop()
        return 0

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
        _reap()

    def park(self) -> None:
        """Put the protocol descriptors in flight on the private socket pair and close them:
        from now on no process (the parent included) holds them, so none can open them
        through /proc/1/fd either."""
        fds = array.array("i", self.protocol)
        self.parking[0].sendmsg([b"p"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        for fd in self.protocol:
            os.close(fd)
        self.protocol = []

    def unpark(self) -> None:
        _, ancillary, _, _ = self.parking[1].recvmsg(1, socket.CMSG_SPACE(2 * 4))
        fds = array.array("i")
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        self.protocol = list(fds)

    def send(self, parts) -> None:
        _write_views(self.protocol[1], parts)

    def read_request(self) -> int | None:
        """Move the next request line to the shared buffer; its length (0: a blank line),
        or None at the end of the input."""
        pending = self.pending
        scan = 0
        while (newline := pending.map.find(b"\n", scan, pending.used)) < 0:
            scan = pending.used
            if pending.read_from(self.protocol[0]) == 0:
                if pending.used == 0:
                    return None
                newline = pending.used  # the last line has no newline
                break
        length = newline
        if _BLANK.fullmatch(pending.map, 0, length):  # matched in place: no copy in the heap
            length = 0
        else:
            self.request.put(pending.view[:length])
        pending.consume(min(newline + 1, pending.used))
        return length

    # --- one call ---------------------------------------------------------------------------

    def fork_spare(self) -> None:
        go_read, go_write = os.pipe()
        os.set_blocking(go_read, False)  # the spare polls it (wait_request)
        channel_read, channel_write = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # fewer wake-ups for big answers
            fcntl.fcntl(channel_write, fcntl.F_SETPIPE_SZ, _CHUNK)
        os.set_blocking(channel_read, False)
        self.drain_wakeup()
        _flush_stdio()
        _CHILD_CLOSES[:] = [*self.protocol, *self.private, go_write, channel_read]
        pid = os.fork()
        if pid == 0:
            self.task_process(go_read, channel_write)  # never returns
        _CHILD_CLOSES.clear()
        os.close(go_read)
        os.close(channel_write)
        self.spare = _Spare(pid, go_write, channel_read, self.request.generation)

    def drain_wakeup(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wakeup[0], 4096):
                pass

    def dispatch(self, length: int) -> _Spare:
        """Hand the request to a live spare that maps the current request buffer."""
        for _ in range(2):
            spare = self.spare
            # The wakeup pipe is not drained here (empty, it would raise BlockingIOError: an
            # exception object while the spare shares the parent's pages); a stale byte
            # only costs wait() one more waitpid.
            if spare.generation != self.request.generation or os.waitpid(spare.pid, os.WNOHANG)[0]:
                self.replace_spare()  # it cannot see a grown buffer, or it died while idle
                continue
            try:
                os.write(spare.go, length.to_bytes(8, "little"))  # < PIPE_BUF: all or nothing
                return spare
            except BrokenPipeError:  # died just now
                self.replace_spare()
        raise RuntimeError("cannot start a task process")

    def replace_spare(self) -> None:
        spare = self.spare
        with contextlib.suppress(OSError):
            os.kill(spare.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spare.pid, 0)
        spare.close()
        self.oom_before = self.oom.read()
        self.fork_spare()

    def call(self, length: int):
        """Run one call; its answer as (log marker or None, buffers to write), written once
        every other process has been sent SIGKILL (see cleanup).

        The task process is done when it exits, or when it stops: its runner code stops it
        with SIGSTOP right after writing the answer, so the answer goes out without waiting
        for the process's teardown. User code stopping itself (or forging an answer and
        stopping, as it could forge one and exit) gains nothing: the channel must hold
        exactly one response line either way."""
        oom_before = self.oom_before
        self.queued = False
        spare = self.dispatch(length)
        started = time.monotonic()
        self.poller.register(spare.channel, select.POLLIN)  # unregistered by cleanup
        return self.wait(spare, started, oom_before)

    def wait(self, spare: _Spare, started: float, oom_before):
        """Read the task's channel until it stops or exits, within its timeout; the answer."""
        channel = self.channel
        poller = self.poller
        exit_fd = self.wakeup[0]
        control = deadline = status = None
        while True:
            if control is None and (control := self.read_control()) is not None:
                timeout = control["timeout"]
                deadline = None if timeout is None else started + timeout
            if control is not None:
                limit = control["max_output_bytes"]
                if limit is not None and channel.used - control["body"] > limit:
                    return self.give_up(
                        control,
                        "OUTPUT_TOO_LARGE",
                        f"the response exceeded max_output_bytes={limit}; the task was killed",
                    )
            if status is not None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                return self.give_up(
                    control,
                    "TIMEOUT",
                    f"the call did not finish within its timeout of {control['timeout']:g} s; "
                    "its processes were killed",
                )
            left = None if deadline is None else deadline - time.monotonic()
            ready = poller.poll(-1 if left is None else max(0, math.ceil(left * 1e3)))
            woken = read = False
            for fd, _ in ready:
                if fd == exit_fd:
                    woken = True
                elif status is None:
                    read = True
                    if not self.read_channel(fd, _CHUNK):
                        poller.unregister(fd)  # end of file: the task and its children closed it
            if woken:  # after the channel: what the task wrote before it stopped is read
                try:  # noqa: SIM105  (no context manager object while pages are shared)
                    os.read(exit_fd, 4096)
                except BlockingIOError:  # gVisor: a task can open /proc/1/fd/N and read it first
                    pass
                pid, got = os.waitpid(spare.pid, os.WNOHANG | os.WUNTRACED)
                if pid:
                    status = 0 if os.WIFSTOPPED(got) else got
                    if not read:  # what it left, unless read in this round already
                        self.read_channel(spare.channel, _CHUNK + 65536)
        marker = control["log_marker"] if control is not None else None
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            problem = self.check_response(control)
            if problem is None:
                return self.forward(control["body"], marker)
            return self.error(
                marker,
                "PROTOCOL_ERROR",
                f"the task's process wrote {problem} instead of one response",
            )
        code = _exit_code(status)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        oom_after = self.oom.read() if killed else None
        if killed and oom_before is not None and oom_after is not None and oom_after > oom_before:
            message = (
                "the task's process was killed by the out-of-memory killer "
                "(the container's memory limit)"
            )
            return self.error(marker, "OOM_KILLED", message, exit_code=code)
        if os.WIFSIGNALED(status):
            message = (
                f"the task's process was killed by signal {os.WTERMSIG(status)} without answering"
            )
            if killed and oom_after is None:
                message += (
                    " (perhaps by the out-of-memory killer: the memory cgroup's oom_kill "
                    "counter cannot be read here)"
                )
        else:
            message = f"the task's process exited with status {code} without answering"
        return self.error(marker, "EXIT_NONZERO", message, exit_code=code)

    def read_channel(self, fd: int, budget: int) -> bool:
        """Read what the pipe holds now, up to about ``budget`` bytes (after the task's exit,
        a process it left behind may still hold the pipe and write on: the cleanup kills it).
        False at the end of the file."""
        channel = self.channel
        try:
            while budget > 0:
                count = channel.read_from(fd)
                if count == 0:
                    return False
                if channel.short:
                    return True  # the pipe is empty now: no BlockingIOError to raise and catch
                budget -= count
        except BlockingIOError:
            pass
        return True

    def read_control(self) -> dict | None:
        """The task process's first line, once complete. Runner code wrote it before any user
        code ran; still checked, so that nothing on the channel can break the parent."""
        channel = self.channel
        newline = channel.map.find(b"\n", 0, channel.used)
        if newline < 0:
            return None
        control = {"timeout": None, "max_output_bytes": None, "log_marker": None}
        try:
            # With the references taken before the import (not the module's json.loads).
            text = channel.map[:newline].decode("utf-8")
            got, end = _RAW_DECODE(text)
            if end != len(text):
                raise ValueError(end)
            timeout, limit, marker = got["timeout"], got["max_output_bytes"], got["log_marker"]
            self.queued = got.get("queued") is True
            if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
                raise TypeError(timeout)
            if limit is not None and (isinstance(limit, bool) or not limit >= 0):
                raise TypeError(limit)
            if marker is not None and not isinstance(marker, str):
                raise TypeError(marker)
            control.update(timeout=timeout, max_output_bytes=limit, log_marker=marker)
        except Exception:
            control["invalid"] = True
        control["body"] = newline + 1
        return control

    def check_response(self, control) -> str | None:
        """Why the channel does not hold exactly one response line, or None when it does.

        The task process wrote the control line before any user code ran; after it, the one
        line its runner code encodes. The parent checks the framing (one newline, at the end;
        a compact object starting with "ok", so never a ready line) without decoding the
        output: the host decodes it, and the bytes never land in the parent's heap.
        """
        if control is None:
            return "nothing (it ended before reading its request)"
        if control.get("invalid"):
            return "an unreadable first line"
        channel = self.channel
        body = control["body"]
        size = channel.used - body
        if size == 0:
            return "nothing"
        newline = channel.map.find(b"\n", body, channel.used)
        if newline < 0:
            return f"{size} bytes without a newline"
        if newline != channel.used - 1:
            return f"more than one line ({size} bytes)"
        # Found in place, no slices or generators: this runs while the task shares pages.
        ok, failed = _RESPONSE_PREFIXES
        framed = channel.map.find(b"}\n", channel.used - 2) == channel.used - 2 and (
            channel.map.find(ok, body, body + len(ok)) == body
            or channel.map.find(failed, body, body + len(failed)) == body
        )
        return None if framed else f"a {size}-byte line that is not a response object"

    def forward(self, body: int, marker):
        """The task's response as views of the channel buffer: no copy in the heap."""
        view = self.channel.view
        end = self.channel.used
        if marker is None:
            return None, [view[body:end]]
        suffix = b',"log_marker":' + _encode_string(marker) + b"}\n"
        return marker, [view[body : end - 2], suffix]

    def give_up(self, control, code: str, message: str):
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)  # the task and everything it started
        return self.error(control["log_marker"], code, message)

    def error(self, marker, code: str, message: str, exit_code: int | None = None):
        error = {"message": message, "code": code}
        if exit_code is not None:
            error["exit_code"] = exit_code
        response = {"ok": False, "error": error}
        if marker is not None:
            response["log_marker"] = marker
        return marker, [_encode(response) + b"\n"]

    def cleanup(self, answer=None, ready: bool = False) -> None:
        """Send SIGKILL to every other process, take the protocol back and write the answer;
        then reap them all, wipe the writable paths and remove System V IPC objects. Raise
        _Unclean when that cannot be confirmed within 5 s.

        A process with SIGKILL pending never runs another instruction of its own, so nothing
        the call started acts after its answer; waiting for the processes' teardown (the
        reaping) happens after the answer, before the next ready line. With ``ready`` (the
        request said another call waits for this container) the answer waits for the cleanup
        instead and goes out with the ready line in one write: the waiting call could not
        start before the ready line anyway, and the host and the engine handle one frame
        instead of two (docs/FORK-PERFORMANCE.md)."""
        deadline = time.monotonic() + _CLEANUP_SECONDS
        channel_fd = None
        if self.spare is not None:
            channel_fd = self.spare.channel
            self.spare.close()
            self.spare = None
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
        if not self.protocol:
            self.unpark()
        if not ready:
            self.answer_now(answer)
            answer = None
        try:
            self.confirm(deadline, channel_fd)
        except BaseException:
            self.answer_now(answer)  # unclean: the task's answer still, but no ready line
            raise
        self.answer_now(answer, _READY)  # None unless ``ready``
        self.request.clear()
        self.channel.clear()

    def answer_now(self, answer, ready=None) -> None:
        """The log marker on stderr, then the answer on the protocol stdout (with ``ready``)."""
        if answer is None:
            return
        marker, parts = answer
        if marker is not None:
            _log_marker(marker)
        self.send(parts if ready is None else [*parts, ready])

    def confirm(self, deadline: float, channel_fd) -> None:
        """Reap every process, wipe, remove System V IPC objects: the container is clean."""
        _kill_all(deadline, self.wakeup[0])  # from here on no process can come back
        # Bookkeeping here, where no other process shares the parent's pages any more.
        if channel_fd is not None:
            with contextlib.suppress(KeyError):  # unregistered at its end of file already
                self.poller.unregister(channel_fd)
        self.oom_before = self.oom.read()
        while True:
            try:
                for path in self.wipe:
                    _wipe(path)
                self.ipc.clean(deadline)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    if isinstance(exc, _Unclean):
                        raise
                    raise _Unclean(f"{type(exc).__name__}: {exc}") from exc
                time.sleep(0.001)

    # --- inside the task process ------------------------------------------------------------

    def task_process(self, go: int, channel: int) -> None:
        """The forked child: set up, wait for the request, answer it on the channel, exit.

        The protocol descriptors are already closed (_after_fork_in_child, before any at-fork
        hook of the user's). Never returns into the parent's code.
        """
        status = _EXIT_RUNNER_FAILED
        try:
            _signal.set_wakeup_fd(-1)
            for sig, handler in self.task_signals:
                _signal.signal(sig, handler)
            self.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != 1:
                return  # the parent is gone already
            self.libc.prctl(_PR_SET_DUMPABLE, 1)  # as any process; the parent stays closed
            _set_oom_score_adj(b"1000")  # the OOM killer's first choice, never the parent
            header = self.wait_request(go)
            os.close(go)
            if len(header) < 8:
                status = 0  # the parent is shutting down
                return
            raw = self.request.map[: int.from_bytes(header, "little")]
            self.answer(raw, channel)
            status = 0
            # Answered: stop, so that the parent forwards the answer now instead of after
            # this process's teardown; it then kills us (SIGKILL ends a stopped process).
            signal.raise_signal(signal.SIGSTOP)
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
        except BaseException:
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                _flush_stdio()
            os._exit(status)

    def wait_request(self, go: int) -> bytes:
        """The request's length, 8 bytes (fewer: the parent is shutting down). Warms up first
        unless the request is waiting already (back to back, the warm-up would delay it)."""
        try:  # non-blocking (fork_spare): no fcntl calls on the way to a waiting request
            return os.read(go, 8)  # the parent writes the 8 bytes at once (< PIPE_BUF)
        except BlockingIOError:
            pass
        if not self.queued:  # after a queued call the next request is on its way: no warm-up
            self.warm_up()
        waiting = select.poll()
        waiting.register(go, select.POLLIN)
        while True:
            waiting.poll()
            try:
                return os.read(go, 8)
            except BlockingIOError:  # woken for nothing
                continue

    def warm_up(self) -> None:
        """Run the runner's side of a call on a made-up request, without user code.

        Right after fork every page is shared with the parent, and the first write to one
        (a reference count, say) copies it: the first call through json and this code took
        hundreds of such faults, on the call's path. Taken now, while the spare waits.
        """
        runner = self.runner
        with contextlib.suppress(Exception):
            request = self.parse(_WARM_UP)
            _control_line(*_control(request), runner.marker)
            self.respond(request, _echo)  # the path of a call, with the runner's own function
            _is_awaitable(runner.function)  # what a result of another type meets
            _flush_stdio()
        runner.marker = None

    def answer(self, raw: bytes, channel: int) -> None:
        runner = self.runner
        try:
            request = self.parse(raw)
            timeout, limit, queued = _control(request)
        except _Failure as failure:
            error = _encode(_error(failure.code, failure.message, failure.details))
            _write_fd(channel, _control_line(None, None, False, runner.marker) + error + b"\n")
            return
        _write_fd(channel, _control_line(timeout, limit, queued, runner.marker))
        response = self.respond(request, runner.function)
        _flush_stdio()
        _write_fd(channel, response + b"\n")

    # The usual call in fewer frames and objects than runner.parse and runner.respond_to: every
    # function and object a task process touches costs it copy-on-write faults (a back-to-back
    # call took ~55 fewer this way, measured). Anything unusual takes the general path.

    def parse(self, raw) -> dict:
        """``runner.parse(raw)``: a UTF-8 JSON object with nothing around it decoded at once."""
        runner = self.runner
        if raw[:2] == b'{"':  # so json.detect_encoding would say UTF-8, and no blanks ahead
            try:
                text = raw.decode("utf-8", "surrogatepass")
                request, end = _RAW_DECODE(text)
            except (ValueError, RecursionError):
                pass  # the general path says what is wrong
            else:
                if end == len(text):
                    marker = request.get("log_marker")
                    runner.marker = marker if isinstance(marker, str) else None
                    return request
        return runner.parse(raw)

    def respond(self, request: dict, function) -> bytes:
        """``runner.respond_to(lambda: runner._invoke(request))``, ``function`` called."""
        runner = self.runner
        if isinstance(function, _Failure) or request.get("collect") is not None:
            return runner.respond_to(lambda: runner._invoke(request))
        runner.files = None
        before = _usage_now()
        try:
            result = function(request.get("input"))
            if type(result) not in _NEVER_AWAITABLE and _is_awaitable(result):
                result = runner._ensure_loop().run_until_complete(result)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            message = f"{type(exc).__name__}: {exc}"
            return _encode(_error("USER_ERROR", message, _user_traceback(exc)))
        response = {"ok": True, "output": result, "usage": _usage_since(before)}
        try:
            return _encode(response)
        except (TypeError, ValueError, RecursionError) as exc:
            message = f"the output cannot be encoded as JSON: {type(exc).__name__}: {exc}"
            return _encode(_error("OUTPUT_NOT_SERIALIZABLE", message))


#: Exact types no result of which is awaitable (_is_awaitable is False): not asked.
_NEVER_AWAITABLE = frozenset((str, int, float, bool, type(None), dict, list, tuple))


def _echo(value):
    return value


#: Set in serve mode: this process answers many calls, and its ru_maxrss is the peak over its
#: life. The kernel's high-water mark is then reset before each call (/proc/self/clear_refs,
#: "5") and read from VmHWM after it; where the reset is refused (gVisor) the peak is None.
_SERVING = False


def _usage_now(start: bool = True):
    """Counters now; at a call's ``start`` in serve mode, with the high-water mark reset."""
    reset = start and _SERVING and _reset_peak()
    return (
        time.monotonic(),
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
        reset,
    )


def _usage_since(before) -> dict:
    """The call's usage: CPU seconds of this process and the children it waited for during the
    call (getrusage deltas), the peak resident set of either (ru_maxrss, bytes; in serve mode
    the call's own, see _SERVING), and the call's wall seconds."""
    t0, self0, children0, reset = before
    now, own, children, _ = _usage_now(start=False)
    cpu = (own.ru_utime + own.ru_stime - self0.ru_utime - self0.ru_stime) + (
        children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime
    )
    if not _SERVING:
        peak = max(own.ru_maxrss, children.ru_maxrss) * 1024
    else:
        peak = _high_water_mark() if reset else None
        if peak is not None and children.ru_maxrss > children0.ru_maxrss:
            # a child waited for during this call rose above every earlier one
            peak = max(peak, children.ru_maxrss * 1024)
    return {"cpu_time": round(cpu, 6), "peak_memory": peak, "wall_time": round(now - t0, 6)}


def _reset_peak() -> bool:
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        return False
    try:
        return os.write(fd, b"5") == 1
    except OSError:
        return False
    finally:
        os.close(fd)


def _high_water_mark():
    """VmHWM of /proc/self/status in bytes, None without it."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _fork_main() -> int:
    if os.getpid() != 1:
        _fork_log(
            f"refusing to start: fork mode runs only as a container's init process (PID 1), "
            f"and this is PID {os.getpid()} (cleanup kills every process it can signal)"
        )
        return _EXIT_NOT_PID1
    return _ForkServer().serve()


def main(argv) -> int:
    global _SERVING
    if "--fork" in argv or os.environ.get("EXECUTOR_SERVE") == "fork":
        return _fork_main()
    serve = "--serve" in argv or os.environ.get("EXECUTOR_SERVE") == "1"
    _SERVING = serve
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
