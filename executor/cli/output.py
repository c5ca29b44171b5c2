"""What the command line prints: results, errors as JSON with their exit status, notes.

Exit status (``run``; ``batch`` uses it for errors before any input runs)::

    0   success
    1   batch: at least one line failed (each failure is a line of the output);
        any other command: a failure not listed below (doctor: a problem was found)
    2   usage: unknown option, bad flag combination, TARGET not found (click's message)
    3   INPUT_INVALID           the input is not JSON or does not match the schema
    4   OUTPUT_INVALID          the task returned a value that does not match / is not JSON
    5   TIMEOUT, START_TIMEOUT  the task overran --timeout; no container within --start-timeout
    6   EXECUTION_FAILED        the task raised; in a container also USER_ERROR, NO_EXECUTE,
                                BAD_REQUEST, OUTPUT_NOT_SERIALIZABLE
    7   OOM_KILLED, EXIT_NONZERO   the container (or the task's process) died without answering
    8   PROTOCOL_ERROR, OUTPUT_TOO_LARGE, COLLECT_TOO_LARGE
    9   ENGINE_UNAVAILABLE, IMAGE_NOT_FOUND
    10  CONFIG_INVALID, SCHEMA_INVALID   (also: the target cannot be imported)
    130 interrupted (Ctrl-C); every container was removed first

Errors are printed on stderr as one JSON object (``ExecutorError.to_dict()``), followed by a
readable line when stderr is a terminal.
"""

from __future__ import annotations

import sys
from typing import Any

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
