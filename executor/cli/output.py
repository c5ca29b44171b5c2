"""What the command line prints: results, errors as JSON with their exit status, notes.

Exit status (``run``; ``batch`` uses it for errors before any input runs)::

    0   success
    1   batch: at least one line failed (each failure is a line of the output);
        any other command: a failure not listed below (doctor: a problem was found)
    2   usage: unknown option, bad flag combination, TARGET not found (click's message)
    3   INPUT_INVALID           the input is not JSON or does not match the schema
    4   OUTPUT_INVALID          the task returned a value that does not match / is not JSON
    5   TIMEOUT, START_TIMEOUT  the task overran --timeout; no container within --start-timeout
    6   EXECUTION_FAILED        the task raised; in a container also USER_ERROR, NO_TASK,
                                NO_EXECUTE, BAD_REQUEST, OUTPUT_NOT_SERIALIZABLE
    7   OOM_KILLED, EXIT_NONZERO   the container (or the task's process) died without answering
    8   PROTOCOL_ERROR, OUTPUT_TOO_LARGE, COLLECT_TOO_LARGE
    9   ENGINE_UNAVAILABLE, IMAGE_NOT_FOUND
    10  CONFIG_INVALID, SCHEMA_INVALID   (also: the target cannot be imported)
    130 interrupted (Ctrl-C); every container was removed first

Errors are printed on stderr as one JSON object (``ExecutorError.to_dict()``), followed by a
readable line when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, TYPE_CHECKING, Any

import msgspec

from .._errors import (
    CollectTooLarge,
    ConfigError,
    ContainerFailed,
    EngineUnavailable,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorError,
    ImageNotFound,
    InputValidationError,
    OutputTooLarge,
    OutputValidationError,
    ProtocolError,
    SchemaError,
    StartTimeout,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "console",
    "encode_error",
    "encode_output",
    "exit_code_for",
    "report_error",
    "say",
    "stderr_is_tty",
    "task_stdout_to_stderr",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Error family → exit status, checked in order (first match wins).
EXIT_CODES: tuple[tuple[tuple[type[ExecutorError], ...], int], ...] = (
    ((InputValidationError,), 3),
    ((OutputValidationError,), 4),
    ((ExecutionTimeout, StartTimeout), 5),
    ((ExecutionFailed,), 6),
    ((ContainerFailed,), 7),
    ((ProtocolError, OutputTooLarge, CollectTooLarge), 8),
    ((EngineUnavailable, ImageNotFound), 9),
    ((ConfigError, SchemaError), 10),
)

#: Engine calls made by doctor/images/reap give up after this many seconds.
ENGINE_TIMEOUT = 10.0


def exit_code_for(exc: BaseException) -> int:
    """The exit status for an error (see the module docstring)."""
    for classes, code in EXIT_CODES:
        if isinstance(exc, classes):
            return code
    return EXIT_FAILED


# --- output helpers ----------------------------------------------------------------------------

encode_output = msgspec.json.Encoder().encode
#: Error data may hold anything; a value JSON cannot hold is written as its ``str()``.
encode_error = msgspec.json.Encoder(enc_hook=str).encode


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def report_error(exc: ExecutorError) -> int:
    """Print ``exc`` on stderr as one JSON object (plus a readable line on a TTY)."""
    sys.stderr.write(encode_error(exc.to_dict()).decode() + "\n")
    sys.stderr.flush()
    if stderr_is_tty():
        from rich.text import Text

        line = Text()
        line.append("error ", style="bold red")
        line.append(f"[{exc.code}] ", style="red")
        line.append(exc.message)
        console().print(line)
    return exit_code_for(exc)


def say(message: str, *, style: str | None = None) -> None:
    """A human-oriented line on stderr (styled on a TTY)."""
    if stderr_is_tty() and style:
        from rich.text import Text

        console().print(Text(message, style=style))
    else:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


@contextlib.contextmanager
def task_stdout_to_stderr() -> Iterator[IO[bytes]]:
    """While inside, whatever writes to stdout lands on stderr; yields the real stdout.

    For the in-process target of ``run`` and ``batch``, whose stdout carries only results:
    the task's ``print()`` (in any thread), a C extension's write to fd 1 and a child process
    inheriting it all go to stderr, as the runners do in a container. Swapped at both levels,
    for the whole command (the target's import included, since calls run concurrently with
    result lines): fd 1 becomes a copy of fd 2 and ``sys.stdout`` is ``sys.stderr``; results
    go to a private copy of the original fd 1. Both are restored on exit.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 at all: nothing can reach stdout anyway
        yield sys.stdout.buffer
        return
    real = os.fdopen(saved, "wb")
    previous = sys.stdout
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield real
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
            previous.flush()  # what the task wrote through sys.__stdout__ goes to stderr too
        os.dup2(saved, 1)
        sys.stdout = previous
        real.close()  # flushes the results; a closed pipe raises here, as a plain write would
