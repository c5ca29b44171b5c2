"""Every error the library raises, each with a stable machine-readable ``code``.

The tree, in three parts: usage errors (fix the call site), failures of the task (the call
reached the task's side and failed there), failures of the infrastructure (what runs the
task failed: the engine, the image, a worker, the executor)::

    class                                    code                 retryable
    ExecutorError                            EXECUTOR_ERROR       no
    ├── ConfigError(ValueError)              CONFIG_INVALID       no   bad arguments
    ├── SchemaError(ValueError)              SCHEMA_INVALID       no   schema cannot compile
    ├── TaskError                            TASK_ERROR           no   the task's side failed
    │   ├── ValidationError(ValueError)      VALIDATION_FAILED    no   value vs type/schema
    │   │   ├── InputValidationError         INPUT_INVALID        no   nothing was run
    │   │   └── OutputValidationError        OUTPUT_INVALID       no
    │   ├── ExecutionTimeout(TimeoutError)   TIMEOUT              no   overran ``timeout``
    │   ├── ExecutionFailed                  EXECUTION_FAILED     no   the task raised; in a
    │   │                                    or the runner's           container: USER_ERROR,
    │   │                                    own code                  NO_EXECUTE, BAD_REQUEST,
    │   │                                                              OUTPUT_NOT_SERIALIZABLE
    │   ├── ContainerFailed                  EXIT_NONZERO         no   exited without answer,
    │   │                                    or OOM_KILLED             or killed for memory
    │   ├── ProtocolError                    PROTOCOL_ERROR       no   not one response
    │   ├── OutputTooLarge                   OUTPUT_TOO_LARGE     no
    │   ├── CollectTooLarge                  COLLECT_TOO_LARGE    no   past max_collect_*
    │   ├── SessionLost                      SESSION_LOST         no   a session's interpreter
    │   │                                    or SESSION_EXPIRED        (its state) is gone
    │   └── SessionFileError                 FILE_ERROR           no   a session file refused:
    │                                        (FILE_TOO_LARGE, FILE_NOT_FOUND, BAD_PATH, NOT_A_FILE)
    └── InfrastructureError                  INFRASTRUCTURE_ERROR no   what runs it failed
        ├── EngineError                      ENGINE_ERROR         no   the engine refused
        │   ├── EngineUnavailable            ENGINE_UNAVAILABLE   when ``delivered`` is
        │   │   (ConnectionError)                                 False
        │   └── ImageNotFound(LookupError)   IMAGE_NOT_FOUND      no
        ├── ImageBuildFailed                 BUILD_FAILED         no
        ├── StartTimeout(TimeoutError)       START_TIMEOUT        yes  past ``start_timeout``
        ├── WorkerLost(ConnectionError)      WORKER_LOST          no   died mid-call
        └── ExecutorClosed(RuntimeError)     CLOSED               no   after ``aclose()``

``SessionLost`` and ``SessionFileError`` are the task's side too: a cell ran out of memory,
exited or ignored its interrupt, or a file operation's path or size was refused.

``TaskError``: retrying the same call unchanged fails the same way, or runs the task again
(a timeout, an out-of-memory kill); change the input, the task or its limits.
``ProtocolError`` is one: the container's side (the task, or the runner in its image) did
not answer with one response, which a retry does not change. ``InfrastructureError``: the
task's machinery failed; whether a retry is safe is ``retryable``.

``retryable`` (a class default, set per instance where it depends on the call) means
exactly: *the same call, retried unchanged, may succeed, and retrying cannot run the task
twice*, because the request never reached the task (``StartTimeout``; an
``EngineUnavailable`` with ``delivered=False``). False means no such promise: a retry fails
the same way, or the task may already have run (a ``WorkerLost``, an ``ExecutionTimeout``:
retry those only if running the task twice is harmless).

Errors carry their data as attributes and serialise with :meth:`ExecutorError.to_dict`
(``retryable`` included) and with pickle (across processes and to Ray nodes). No exception
from msgspec, fastjsonschema, anyio, aiohttp or aiodocker escapes the public API unwrapped;
the foreign exception is chained as ``__cause__``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "CollectTooLarge",
    "ConfigError",
    "ContainerFailed",
    "EngineError",
    "EngineUnavailable",
    "ExecutionFailed",
    "ExecutionTimeout",
    "ExecutorClosed",
    "ExecutorError",
    "ImageBuildFailed",
    "ImageNotFound",
    "InfrastructureError",
    "InputValidationError",
    "OutputTooLarge",
    "OutputValidationError",
    "ProtocolError",
    "SchemaError",
    "SessionFileError",
    "SessionLost",
    "StartTimeout",
    "TaskError",
    "ValidationError",
    "WorkerLost",
]


class ExecutorError(Exception):
    """Root of every error raised by the library.

    ``code`` is stable and machine-readable; ``message`` is for people. Subclasses add
    data attributes, listed by :meth:`to_dict`. Catch :class:`TaskError` or
    :class:`InfrastructureError` to tell the two kinds of failure apart, and read
    ``retryable`` before retrying (the module docstring says what it promises).
    """

    default_code: ClassVar[str] = "EXECUTOR_ERROR"
    #: Extra attribute names included by :meth:`to_dict`.
    _fields: ClassVar[tuple[str, ...]] = ()
    #: True when the same call, retried unchanged, may succeed and cannot run the task twice
    #: (its request never reached the task). A class default; set per instance where it
    #: depends on the call (``EngineUnavailable``: whether it was delivered).
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code: str = code or self.default_code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive default pickling; restore via __dict__.
        return (_rebuild, (type(self), self.message), self.__dict__)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description: ``type``, ``code``, ``message``, ``retryable``
        and the data."""
        out: dict[str, Any] = {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        for name in self._fields:
            value = getattr(self, name, None)
            if value is not None:
                out[name] = value
        return out


def _rebuild(cls: type[ExecutorError], message: str) -> ExecutorError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err


class TaskError(ExecutorError):
    """The call failed on the task's side: its input or output, its code, or a limit it hit.

    Retrying it unchanged fails the same way, or runs the task again: change the input, the
    task or its limits. Base of :class:`ValidationError`, :class:`ExecutionTimeout`,
    :class:`ExecutionFailed`, :class:`ContainerFailed`, :class:`ProtocolError`,
    :class:`OutputTooLarge` and :class:`CollectTooLarge`.
    """

    default_code = "TASK_ERROR"


class InfrastructureError(ExecutorError):
    """What runs the task failed: the engine, an image, a worker, or the executor itself.

    The task is not at fault; ``retryable`` says whether the same call may simply be sent
    again (its request never reached the task). Base of :class:`EngineError` (and its
    :class:`EngineUnavailable`, :class:`ImageNotFound`), :class:`ImageBuildFailed`,
    :class:`StartTimeout`, :class:`WorkerLost` and :class:`ExecutorClosed`.
    """

    default_code = "INFRASTRUCTURE_ERROR"


class ConfigError(ExecutorError, ValueError):
    """An executor or config argument is invalid (raised at construction)."""

    default_code = "CONFIG_INVALID"


class SchemaError(ExecutorError, ValueError):
    """A JSON Schema could not be loaded or compiled (raised at construction, never per call)."""

    default_code = "SCHEMA_INVALID"
    _fields = ("source",)

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class ValidationError(TaskError, ValueError):
    """Data does not match its type or schema.

    ``path`` locates the offending value as ``$.a.b[0]`` (``$`` is the whole value);
    ``reason`` is the bare validator message, ``message`` the full sentence.
    """

    default_code = "VALIDATION_FAILED"
    _fields = ("path", "reason", "which")
    which: ClassVar[str] = "value"

    def __init__(self, reason: str, *, path: str = "$") -> None:
        super().__init__(f"{self.which} is invalid at {path}: {reason}")
        self.path = path
        self.reason = reason


class InputValidationError(ValidationError):
    """The input does not match the input type or ``schema_in``; nothing was run."""

    default_code = "INPUT_INVALID"
    which = "input"


class OutputValidationError(ValidationError):
    """The task returned a value that does not match the output type or ``schema_out``."""

    default_code = "OUTPUT_INVALID"
    which = "output"


class ExecutionTimeout(TaskError, TimeoutError):
    """The call did not finish within ``timeout`` seconds (the container, if any, was killed)."""

    default_code = "TIMEOUT"
    _fields = ("timeout",)

    def __init__(self, timeout: float, *, what: str = "task") -> None:
        super().__init__(
            f"{what} did not finish within {timeout:g} s; raise the timeout or make the task faster"
        )
        self.timeout = timeout


class ExecutionFailed(TaskError):
    """The task itself failed.

    For a local task the original exception is chained as ``__cause__`` and ``details``
    holds its traceback. For a container, ``code`` is the runner's code (``USER_ERROR``,
    ``NO_EXECUTE``, ``BAD_REQUEST``, ``OUTPUT_NOT_SERIALIZABLE``, ...) and ``details``
    the runner's details (usually the stack trace); ``logs`` holds the container's stderr.
    """

    default_code = "EXECUTION_FAILED"
    _fields = ("details", "logs")

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: str | None = None,
        logs: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.details = details
        self.logs = logs


class ContainerFailed(TaskError):
    """The container ended without a response: killed for memory, or exited non-zero.

    ``code`` is ``OOM_KILLED`` when the engine reports an out-of-memory kill, otherwise
    ``EXIT_NONZERO``. ``logs`` is the tail of the container's stderr.
    """

    default_code = "EXIT_NONZERO"
    _fields = ("exit_code", "oom_killed", "logs", "container_id")

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None,
        oom_killed: bool = False,
        logs: str = "",
        container_id: str | None = None,
    ) -> None:
        super().__init__(message, code="OOM_KILLED" if oom_killed else "EXIT_NONZERO")
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.logs = logs
        self.container_id = container_id


class ProtocolError(TaskError):
    """The runner's stdout was not one valid protocol response.

    ``received`` holds the first bytes that arrived (decoded leniently).
    """

    default_code = "PROTOCOL_ERROR"
    _fields = ("received", "logs")

    def __init__(self, message: str, *, received: bytes = b"", logs: str | None = None) -> None:
        super().__init__(message)
        self.received = received[:200].decode("utf-8", "replace")
        self.logs = logs


class OutputTooLarge(TaskError):
    """The response exceeded ``max_output_bytes``; reading stopped and the container was killed."""

    default_code = "OUTPUT_TOO_LARGE"
    _fields = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the response exceeded max_output_bytes={limit}; the container was killed. "
            "Return less data or raise max_output_bytes"
        )
        self.limit = limit


class CollectTooLarge(TaskError):
    """The task left more files, or more bytes, than ``max_collect_files``/``max_collect_bytes``.

    Nothing is cut silently: the call fails. ``path`` is the collected directory (for
    :class:`~executor.CodeExecutor`: the program's working directory), ``max_bytes`` and
    ``max_files`` the limits (bytes count the files' sizes plus their relative paths).
    """

    default_code = "COLLECT_TOO_LARGE"
    _fields = ("path", "max_bytes", "max_files", "logs")

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        max_bytes: int | None = None,
        max_files: int | None = None,
        logs: str | None = None,
    ) -> None:
        super().__init__(
            f"{message}; return fewer or smaller files, or raise max_collect_bytes / "
            "max_collect_files"
        )
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.logs = logs


class EngineError(InfrastructureError):
    """The engine answered but refused a request (a 4xx/5xx that is not an outage).

    ``status`` is the HTTP status, ``engine`` the engine's name. Also the base of the
    engine's other failures, :class:`EngineUnavailable` and :class:`ImageNotFound`: catch
    ``EngineError`` for "something is wrong with the engine".
    """

    default_code = "ENGINE_ERROR"
    _fields = ("status", "engine")

    def __init__(
        self, message: str, *, status: int | None = None, engine: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.engine = engine


class EngineUnavailable(EngineError, ConnectionError):
    """The engine (or, for a Ray executor, the cluster) could not be reached or failed mid-call.

    ``delivered`` is False when the request never reached a container (the call is safe to
    retry: ``retryable`` is True), True when it had, None when that is not known (``retryable``
    is False: whoever learns that it was not delivered sets both). ``hint`` replaces the
    default advice appended to the message.
    """

    default_code = "ENGINE_UNAVAILABLE"
    _fields = ("engine", "delivered")

    def __init__(
        self,
        message: str,
        *,
        engine: str | None = None,
        delivered: bool | None = None,
        hint: str | None = None,
    ) -> None:
        if hint is None:
            hint = (
                "Is the engine running? Start Docker (or Podman's API service) and point"
                " DOCKER_HOST at it; `executor doctor` checks the setup and says what is missing."
            )
        super().__init__(f"{message} {hint}" if hint else message, engine=engine)
        self.delivered = delivered
        self.retryable = delivered is False


class ImageNotFound(EngineError, LookupError):
    """The image is not present on the engine (nothing is ever pulled implicitly)."""

    default_code = "IMAGE_NOT_FOUND"
    _fields = ("image", "engine")

    def __init__(self, image: str, *, engine: str | None = None, hint: str | None = None) -> None:
        where = f" on engine {engine}" if engine else ""
        super().__init__(
            f"image {image!r} was not found{where}. "
            + (hint or "Build it (`executor images build runners` builds the runner images)."),
            engine=engine,
        )
        self.image = image


class StartTimeout(InfrastructureError, TimeoutError):
    """No container was ready for the call within ``start_timeout`` seconds.

    The time went to waiting for the engine (admission, create, attach, start) or for a
    pooled container or worker to become free, never to the task: the request was not
    delivered (``delivered`` is False), so the call is safe to retry. ``waiting`` is how many
    calls were queued for the engine when it gave up, ``phase`` what it was waiting for.
    """

    default_code = "START_TIMEOUT"
    _fields = ("start_timeout", "waiting", "phase", "delivered")
    retryable = True

    def __init__(
        self, start_timeout: float, *, waiting: int = 0, phase: str = "a container"
    ) -> None:
        queued = f"; {waiting} call(s) were waiting for it" if waiting else ""
        super().__init__(
            f"no container was ready within start_timeout={start_timeout:g} s while waiting "
            f"for {phase}{queued}: the engine is saturated. The request was not delivered, so "
            "it is safe to retry; lower the concurrency, raise containers or start_timeout"
        )
        self.start_timeout = start_timeout
        self.waiting = waiting
        self.phase = phase
        self.delivered = False


class ImageBuildFailed(InfrastructureError):
    """An image build failed; ``logs`` holds the tail of the build output."""

    default_code = "BUILD_FAILED"
    _fields = ("target", "logs")

    def __init__(self, message: str, *, target: str, logs: str = "") -> None:
        super().__init__(message)
        self.target = target
        self.logs = logs


class WorkerLost(InfrastructureError, ConnectionError):
    """The worker running a call (a Ray actor, its node, or the container itself, removed by
    something other than the executor) died after the request was delivered.

    The call may or may not have run to its end; it is not retried automatically, so an
    input never runs twice without the caller knowing (``retryable`` is False: retry it
    only if running the task twice is harmless). ``worker`` names the worker.
    """

    default_code = "WORKER_LOST"
    _fields = ("worker", "delivered")

    def __init__(self, message: str, *, worker: str | None = None) -> None:
        super().__init__(message)
        self.worker = worker
        self.delivered = True


class SessionLost(TaskError):
    """A session's interpreter, with its variables, is gone: ``reason`` says why.

    Code ``SESSION_LOST``: the interpreter died (out of memory, ``exit()``, ``os._exit``), ignored
    the interrupt of a timed-out cell, or its container ended; the session is usable again, in
    a fresh interpreter (``files_kept`` says whether the working directory survived: False when
    the container itself was replaced). Code ``SESSION_EXPIRED``: ``idle_timeout`` or
    ``max_lifetime`` ended the session and removed its container; open a new one.
    """

    default_code = "SESSION_LOST"
    _fields = ("reason", "files_kept")

    def __init__(
        self, message: str, *, reason: str, files_kept: bool = True, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.reason = reason
        self.files_kept = files_kept


class SessionFileError(TaskError):
    """A session file operation was refused: ``path`` with ``code`` FILE_TOO_LARGE (past
    ``max_collect_bytes``), FILE_NOT_FOUND, BAD_PATH (absolute, ``..``, a link leading out of
    the working directory), NOT_A_FILE or FILE_ERROR."""

    default_code = "FILE_ERROR"
    _fields = ("path",)

    def __init__(self, message: str, *, path: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.path = path


class ExecutorClosed(InfrastructureError, RuntimeError):
    """A call was made on an executor after :meth:`~executor.Executor.aclose`."""

    default_code = "CLOSED"

    def __init__(self, message: str = "the executor is closed; create a new one") -> None:
        super().__init__(message)
