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
    "CODE_PY",
    "COMPARISONS",
    "COMPILE_FLAGS",
    "LANGUAGES",
    "MAX_TESTS",
    "TAGS",
    "VERDICTS",
    "Checker",
    "CodeOutput",
    "CodeResult",
    "CodeRun",
    "CodeTask",
    "Compile",
    "FilesError",
    "TestCase",
    "TestResult",
    "Usage",
    "check_judging",
    "check_language_argument",
    "classify_line",
    "code_run",
    "compile_flags",
    "default_image",
    "image_named",
    "judge_image",
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
    # -- judging (see "Judging programs" in the README) -------------------------------------
    tests: list[TestCase] = []
    time_limit: float | None = None
    memory_limit: int | None = None
    compare: str = "tokens"
    float_tolerance: float = 1e-6
    checker: Checker | None = None
    stop_on_first_failure: bool = False
    flags: list[str] | None = None


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
    # -- judging ----------------------------------------------------------------------------
    usage: Usage | None = None
    compile: Compile | None = None
    verdict: str | None = None
    tests: list[TestResult] = []


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
    # -- judging ----------------------------------------------------------------------------
    tests: list[TestCase] | None = None
    time_limit: float | None = None
    memory_limit: int | None = None
    compare: str = "tokens"
    float_tolerance: float = 1e-6
    checker: Checker | None = None
    stop_on_first_failure: bool = False
    flags: list[str] | None = None
    keep_stdout: int = 0
    keep_stderr: int = 0


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
    usage: Usage | None = None
    compile: Compile | None = None
    verdict: str | None = None
    tests: list[TestResult] | None = None


#: Language → (runner image family, code runner module inside it).
LANGUAGES: dict[str, tuple[str, str]] = {
    "python": ("python", "/opt/executor/code.py"),
    "bash": ("python", "/opt/executor/code.py"),
    "node": ("node", "/opt/executor/code.mjs"),
    # Compiled languages: the judge image (the Python image plus Debian's compilers).
    "c": ("judge", "/opt/executor/code.py"),
    "cpp": ("judge", "/opt/executor/code.py"),
    "rust": ("judge", "/opt/executor/code.py"),
    "java": ("judge", "/opt/executor/code.py"),
    "go": ("judge", "/opt/executor/code.py"),
}
#: How the code runner tags the program's lines on its stderr in stream mode.
TAGS = {b"\x1eo": "stdout", b"\x1ee": "stderr"}
_UNSUPPORTED: dict[str, str] = {}
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def check_language_argument(language: object, owner: str) -> None:
    """Refuse a ``language`` that is not a string with a :class:`ConfigError` showing the
    call ``owner`` expects: the usual slip is the config passed first (``owner(config)``),
    where the language belongs."""
    if isinstance(language, str):
        return
    raise ConfigError(
        f"{owner} takes the language first, a string such as 'python', and the config second: "
        f'{owner}("python", config); got a {type(language).__name__} as the language'
    )


def language_of(language: str) -> tuple[str, str]:
    """The image family and code runner module for ``language``, or :class:`ConfigError`."""
    check_language_argument(language, "CodeExecutor")
    if language in LANGUAGES:
        return LANGUAGES[language]
    supported = ", ".join(f"{name!r}" for name in LANGUAGES)
    why = _UNSUPPORTED.get(language, f"{language!r} is not one of them")
    raise ConfigError(f"CodeExecutor runs {supported} programs; {why}")


#: The code runner of the Python-based images (the judge image's runs node programs too).
CODE_PY = "/opt/executor/code.py"


def judge_image(image: str) -> bool:
    """Whether ``image`` is the judge image, or one named after it: the judge image's own
    (``EXECUTOR_JUDGE_IMAGE``), or a name whose last part holds ``judge`` as a word
    (``executor/runner-judge:latest``, ``myorg/judge-extra:1``). It has node next to the
    compilers, so any program is judged there with a checker in any language."""
    return image == default_image("judge") or image_named(image, "judge")


def image_named(image: str, word: str) -> bool:
    """Whether the last part of ``image``'s name (no registry, tag or digest) holds ``word`` as
    a word: ``runner-judge``, ``judge_extra``, ``python3`` for ``judge`` and ``python``."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    return re.search(rf"(^|[-_.]){word}($|[-_.0-9])", name) is not None


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
        fields = dict(value)
        if isinstance(fields.get("tests"), list | tuple):
            fields["tests"] = [
                TestCase(**test) if isinstance(test, dict) else test for test in fields["tests"]
            ]
        if isinstance(fields.get("checker"), dict):
            fields["checker"] = Checker(**fields["checker"])
        run = CodeRun(**fields)
    else:
        raise _fail(f"expected a CodeRun, a dict or a source string, got {type(value).__name__}")
    _check_run(run)
    check_judging(run)
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


# -- judging programs: test cases, verdicts, usage, compiled languages -------------------------
#
# Kept in one block (the fields above only name these types): the code runner compiles the
# program once, runs each test as its own process under the limits, and compares its output.

#: The verdicts, in the order a test's is decided: the first that applies wins.
VERDICTS = ("CE", "TLE", "MLE", "OLE", "RE", "WA", "AC")
#: Output comparisons; a ``checker`` replaces them.
COMPARISONS = ("exact", "lines", "tokens", "float")
#: The compiler flags used when ``CodeRun.flags`` is None (the compiler, source and output
#: name are added by the code runner: ``g++ FLAGS main.cpp -o main``).
COMPILE_FLAGS: dict[str, list[str]] = {
    "c": ["-O2", "-std=gnu11", "-pipe"],
    "cpp": ["-O2", "-std=gnu++17", "-pipe"],
    "rust": ["-O", "--edition", "2021"],
    "java": ["-encoding", "UTF-8"],
    "go": [],
}
#: More tests than this in one CodeRun are refused (the answer's size is bounded by it).
MAX_TESTS = 10_000
#: Room in the answer for one test's verdict, usage and flags (besides its output).
TEST_OVERHEAD = 512


class Usage(msgspec.Struct, frozen=True):
    """What a program used, from the kernel's own counters; None where none is available.

    ``cpu_time``: user + system CPU seconds of the program's processes (``wait4`` rusage,
    waited descendants included). ``peak_memory``: the largest resident set of one of them, in
    bytes (``ru_maxrss``). ``wall_time``: seconds from its start to its exit, measured inside
    the container.
    """

    cpu_time: float | None = None
    peak_memory: int | None = None
    wall_time: float | None = None


class TestCase(msgspec.Struct, frozen=True):
    """One test: the program's stdin and, optionally, the expected stdout.

    Without ``expected`` (and without a checker) a test passes when the program ends well
    within its limits.
    """

    __test__ = False  # not a pytest class

    stdin: str = ""
    expected: str | None = None


class Checker(msgspec.Struct, frozen=True):
    """A checker program (any language the image runs): ``checker INPUT OUTPUT ANSWER``.

    It runs next to the program, in the program's image: in the judge image
    (``CodeExecutor.image_for("judge")``) any program takes a checker in any language; in the
    Node image only JavaScript (``language="node"``); in the Python image Python or bash.
    Another pairing is :class:`InputValidationError` at ``$.checker.language``, naming the
    judge image.

    It is compiled once per run and started once per test with three file paths: the test's
    stdin, the program's stdout, the expected output (testlib's order); exit status 0 means
    AC, anything else WA; what it prints is the test's ``message``.
    """

    code: str
    language: str = "python"
    flags: list[str] | None = None


class Compile(msgspec.Struct, frozen=True):
    """The compile step: whether it worked, what the compiler said, how long it took."""

    ok: bool
    stdout: str
    stderr: str
    exit_code: int
    duration: float
    usage: Usage | None = None


class TestResult(msgspec.Struct, frozen=True):
    """One test's outcome: its verdict, why (``message``), output kept and usage.

    ``stdout``/``stderr`` are kept up to ``max_output_bytes``/``max_log_bytes`` of the config
    divided by the number of tests (flagged when cut; OLE is decided on the whole output).
    """

    __test__ = False  # not a pytest class

    verdict: str
    message: str
    stdout: str
    stderr: str
    exit_code: int
    usage: Usage
    stdout_truncated: bool = False
    stderr_truncated: bool = False


def compile_flags(language: str, flags: list[str] | None) -> list[str] | None:
    """The flags a compiled language's compiler gets (its default for None); None if none."""
    if language not in COMPILE_FLAGS:
        return None
    return list(COMPILE_FLAGS[language] if flags is None else flags)


def check_judging(run: CodeRun) -> None:
    """Refuse judging fields that cannot work, with the path of the first problem."""
    if not isinstance(run.tests, list | tuple):
        raise _fail("expected a list of TestCase", "$.tests")
    if len(run.tests) > MAX_TESTS:
        raise _fail(f"at most {MAX_TESTS} tests per run, got {len(run.tests)}", "$.tests")
    for index, test in enumerate(run.tests):
        if not isinstance(test, TestCase):
            raise _fail("expected a TestCase", f"$.tests[{index}]")
        if not isinstance(test.stdin, str):
            raise _fail("expected a string", f"$.tests[{index}].stdin")
        if test.expected is not None and not isinstance(test.expected, str):
            raise _fail("expected a string or None", f"$.tests[{index}].expected")
    limit = run.time_limit
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit < 1e6
    ):
        raise _fail("must be a positive number of CPU seconds or None", "$.time_limit")
    memory = run.memory_limit
    if memory is not None and (
        isinstance(memory, bool) or not isinstance(memory, int) or memory < 1024 * 1024
    ):
        raise _fail("must be a number of bytes (at least 1 MiB) or None", "$.memory_limit")
    if run.compare not in COMPARISONS:
        raise _fail(f"must be one of {', '.join(COMPARISONS)} (or give a checker)", "$.compare")
    tolerance = run.float_tolerance
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        raise _fail("must be a number >= 0", "$.float_tolerance")
    if run.checker is not None:
        if not isinstance(run.checker, Checker):
            raise _fail("expected a Checker", "$.checker")
        if run.checker.language not in LANGUAGES:
            raise _fail(f"unknown language {run.checker.language!r}", "$.checker.language")
    for where, flags in (
        ("$.flags", run.flags),
        ("$.checker.flags", getattr(run.checker, "flags", None)),
    ):
        if flags is not None and (
            not isinstance(flags, list | tuple) or not all(isinstance(f, str) for f in flags)
        ):
            raise _fail("expected a list of strings or None", where)
