"""Code strings: what a :class:`~executor.CodeExecutor` call takes and gives back.

:class:`CodeRun` is a program (source text) with its stdin, arguments and input files;
:class:`CodeResult` is what it wrote, how it ended and the files it made. The code runner
inside the runner images (``runners/python/code.py``, ``runners/node/code.mjs``) runs the
program as its own process; this module also holds the wire form of that exchange
(:class:`CodeTask` in, :class:`CodeOutput` out) and the languages each image runs. No
container code here: ``from executor import CodeRun`` stays light.
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec

from ._errors import ConfigError, InputValidationError

__all__ = [
    "LANGUAGES",
    "TAGS",
    "CodeOutput",
    "CodeResult",
    "CodeRun",
    "CodeTask",
    "FilesError",
    "classify_line",
    "code_run",
    "default_image",
    "language_of",
]


class CodeRun(msgspec.Struct, frozen=True):
    """One program to run: its source, stdin, command-line arguments and input files.

    ``files`` maps relative paths (``data/in.csv``) to contents (text is written as UTF-8);
    they are written into the program's fresh working directory, next to the program itself
    (``main.py``, ``main.sh``, ``main.mjs``/``main.cjs``: see :class:`~executor.CodeExecutor`).
    ``timeout``: this program's own limit in seconds (``None``: the executor's); it may not
    exceed the executor's ``config.timeout``, the bound its operator set: a larger one is
    refused (:class:`InputValidationError` at ``$.timeout``), never silently cut.
    """

    code: str
    stdin: str = ""
    argv: list[str] = []
    files: dict[str, str | bytes] = {}
    timeout: float | None = None


class CodeResult(msgspec.Struct, frozen=True):
    """What a program did: its output, exit status, the files it made, and its run time.

    ``stdout`` and ``stderr`` are decoded as UTF-8 (invalid bytes replaced) and kept up to
    ``max_output_bytes`` and ``max_log_bytes`` of the executor's config; a cap hit sets
    ``stdout_truncated``/``stderr_truncated`` (the rest was read and dropped). ``exit_code`` is
    the program's status (128 + N when killed by signal N); a non-zero exit is a result, not
    an error. ``files``: every regular file under the working directory that is new or whose
    content changed (unchanged input files and the unchanged program are left out), by
    relative path. ``duration`` is the program's own run time in seconds, measured inside the
    container from its start to its exit.
    """

    stdout: str
    stderr: str
    exit_code: int
    files: dict[str, bytes]
    duration: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False


# -- the wire form of a code run (host <-> code runner) ----------------------------------------


class CodeTask(msgspec.Struct, frozen=True):
    """The code runner's input (``runners/python/code.py``, ``runners/node/code.mjs``)."""

    language: str
    code: str
    stdin: str
    argv: list[str]
    files: dict[str, bytes]
    timeout: float | None
    max_stdout: int
    max_stderr: int
    max_collect_bytes: int
    max_collect_files: int
    forward: bool = False


class FilesError(msgspec.Struct, frozen=True):
    """Why no file came back: ``COLLECT_TOO_LARGE`` or ``COLLECT_FAILED``."""

    code: str
    message: str


class CodeOutput(msgspec.Struct, frozen=True):
    """The code runner's output."""

    stdout: str
    stderr: str
    exit_code: int
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration: float
    files: dict[str, bytes]
    files_error: FilesError | None = None


#: Language → (runner image family, code runner module inside it).
LANGUAGES: dict[str, tuple[str, str]] = {
    "python": ("python", "/opt/executor/code.py"),
    "bash": ("python", "/opt/executor/code.py"),
    "node": ("node", "/opt/executor/code.mjs"),
}
#: How the code runner tags the program's lines on its stderr in stream mode.
TAGS = {b"\x1eo": "stdout", b"\x1ee": "stderr"}
_UNSUPPORTED = {
    "go": (
        "Go programs cannot be run from source: the Go runner image is `scratch` with one "
        "static binary and no toolchain (compiling per call would also take seconds); compile "
        "Go code into a runner image instead (docs/RUNNERS.md, 'A custom Go runner')"
    ),
}
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def language_of(language: str) -> tuple[str, str]:
    """The image family and code runner module for ``language``, or :class:`ConfigError`."""
    if language in LANGUAGES:
        return LANGUAGES[language]
    supported = ", ".join(f"{name!r}" for name in LANGUAGES)
    why = _UNSUPPORTED.get(language, f"{language!r} is not one of them")
    raise ConfigError(f"CodeExecutor runs {supported} programs; {why}")


def default_image(family: str) -> str:
    """The stock runner image of a family; ``EXECUTOR_<FAMILY>_IMAGE`` points elsewhere."""
    return os.environ.get(f"EXECUTOR_{family.upper()}_IMAGE") or f"executor/runner-{family}:latest"


def _fail(reason: str, path: str = "$") -> InputValidationError:
    return InputValidationError(reason, path=path)


def _check_name(name: Any) -> None:
    where = f"$.files[{name!r}]"
    if not isinstance(name, str) or not name:
        raise _fail("file names must be non-empty strings", where)
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise _fail("must be a plain relative path like 'data/in.csv'", where)
    if _CONTROL.search(name):
        raise _fail("file names may not hold control characters", where)


def code_run(value: Any) -> CodeRun:
    """``value`` (a CodeRun, a dict of its fields, or a source string) as a checked CodeRun.

    Raises :class:`InputValidationError` with the path of the first problem.
    """
    if isinstance(value, CodeRun):
        run = value
    elif isinstance(value, str):
        run = CodeRun(value)
    elif isinstance(value, dict):
        unknown = sorted(set(value) - set(CodeRun.__struct_fields__))
        if unknown:
            raise _fail(f"unknown field {unknown[0]!r}", f"$.{unknown[0]}")
        if "code" not in value:
            raise _fail("missing required field 'code'")
        run = CodeRun(**value)
    else:
        raise _fail(f"expected a CodeRun, a dict or a source string, got {type(value).__name__}")
    _check_run(run)
    return run


def _check_run(value: CodeRun) -> None:
    if not isinstance(value.code, str):
        raise _fail("expected a string", "$.code")
    if not isinstance(value.stdin, str):
        raise _fail("expected a string", "$.stdin")
    if not isinstance(value.argv, list | tuple):
        raise _fail("expected a list of strings", "$.argv")
    for index, arg in enumerate(value.argv):
        if not isinstance(arg, str):
            raise _fail("expected a string", f"$.argv[{index}]")
    timeout = value.timeout
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < float("inf")
    ):
        raise _fail(f"expected a positive number of seconds or null, got {timeout!r}", "$.timeout")
    if not isinstance(value.files, dict):
        raise _fail("expected an object of file contents", "$.files")
    for name, content in value.files.items():
        _check_name(name)
        if not isinstance(content, str | bytes | bytearray):
            raise _fail("expected text or bytes", f"$.files[{name!r}]")


def classify_line(line: bytes) -> tuple[str, bytes]:
    """A streamed line's stream: the code runner's tag, else ``log`` (the runner's own)."""
    stream = TAGS.get(line[:2])
    if stream is None:
        return "log", line
    return stream, line[2:]
