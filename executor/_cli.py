"""The ``executor`` command line (also ``python -m executor``).

Commands: ``run`` (one call), ``batch`` (a JSON-lines file of inputs), ``images build|list``,
``doctor`` and ``reap``. click and rich come from the ``cli`` extra; the package root never
imports this module, so ``import executor`` stays light.

Exit status (``run``; ``batch`` uses it for errors before any input runs)::

    0   success
    1   batch: at least one line failed (each failure is a line of the output);
        any other command: a failure not listed below (doctor: a problem was found)
    2   usage: unknown option, bad flag combination, TARGET not found (click's message)
    3   INPUT_INVALID           the input is not JSON or does not match the schema
    4   OUTPUT_INVALID          the task returned a value that does not match / is not JSON
    5   TIMEOUT
    6   EXECUTION_FAILED        the task raised; in a container also USER_ERROR, NO_EXECUTE,
                                BAD_REQUEST, OUTPUT_NOT_SERIALIZABLE
    7   OOM_KILLED, EXIT_NONZERO   the container died without answering
    8   PROTOCOL_ERROR, OUTPUT_TOO_LARGE
    9   ENGINE_UNAVAILABLE, IMAGE_NOT_FOUND
    10  CONFIG_INVALID, SCHEMA_INVALID   (also: the target cannot be imported)
    130 interrupted (Ctrl-C); every container was removed first

Errors are printed on stderr as one JSON object (``ExecutorError.to_dict()``), followed by a
readable line when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import click
import msgspec

from ._base import Executor
from ._errors import (
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
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    import aiodocker

    from ._base import Execution
    from ._container import ContainerExecutor

__all__ = ["EXIT_CODES", "exit_code_for", "main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Error family → exit status, checked in order (first match wins).
EXIT_CODES: tuple[tuple[tuple[type[ExecutorError], ...], int], ...] = (
    ((InputValidationError,), 3),
    ((OutputValidationError,), 4),
    ((ExecutionTimeout,), 5),
    ((ExecutionFailed,), 6),
    ((ContainerFailed,), 7),
    ((ProtocolError, OutputTooLarge), 8),
    ((EngineUnavailable, ImageNotFound), 9),
    ((ConfigError, SchemaError), 10),
)

RUNNER_IMAGES = {
    "python": "executor/runner-python:latest",
    "node": "executor/runner-node:latest",
    "go": "executor/runner-go:latest",
}
#: Where each runner loads the user's module from, and the function it calls.
RUNNER_MODULES = {"python": "/app/execute.py", "node": "/app/execute.mjs"}
RUNNER_FUNCTIONS = {"python": "execute", "node": "executeFunction"}
GO_NOTE = (
    "Go code is compiled into the runner image, it cannot be injected at run time: build an "
    "image with your package (see examples/stats/ and the GO_FUNCTION_DIR build arg of "
    "docker-bake.hcl), then run it with `executor run --image YOUR_IMAGE --input ...` "
    "(no TARGET)."
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

_encode_output = msgspec.json.Encoder().encode
#: Error data may hold anything; a value JSON cannot hold is written as its ``str()``.
_encode_error = msgspec.json.Encoder(enc_hook=str).encode


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def report_error(exc: ExecutorError) -> int:
    """Print ``exc`` on stderr as one JSON object (plus a readable line on a TTY)."""
    sys.stderr.write(_encode_error(exc.to_dict()).decode() + "\n")
    sys.stderr.flush()
    if _stderr_is_tty():
        from rich.text import Text

        line = Text()
        line.append("error ", style="bold red")
        line.append(f"[{exc.code}] ", style="red")
        line.append(exc.message)
        _console().print(line)
    return exit_code_for(exc)


def _say(message: str, *, style: str | None = None) -> None:
    """A human-oriented line on stderr (styled on a TTY)."""
    if _stderr_is_tty() and style:
        from rich.text import Text

        _console().print(Text(message, style=style))
    else:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


# --- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What ``TARGET`` names: a file (with an optional function) or ``module:function``."""

    text: str
    path: Path | None = None
    module: str | None = None
    function: str | None = None

    @property
    def language(self) -> str | None:
        if self.path is None:
            return "python"
        suffix = self.path.suffix
        if suffix == ".py":
            return "python"
        if suffix in (".mjs", ".js"):
            return "node"
        if suffix == ".go":
            return "go"
        return None


def parse_target(text: str) -> Target:
    """Parse ``file.py``, ``file.py:function`` or ``module:function``.

    Raises :class:`click.BadParameter` when the file does not exist or the text fits no form.
    """
    head, sep, tail = text.rpartition(":")
    function: str | None = None
    spec = text
    if sep and tail.isidentifier() and head:
        spec, function = head, tail
    looks_like_file = spec.endswith((".py", ".mjs", ".js", ".go")) or "/" in spec
    if looks_like_file or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise click.BadParameter(f"file {spec!r} not found", param_hint="TARGET")
        return Target(text, path=path, function=function)
    if function is None:
        raise click.BadParameter(
            f"{text!r} is neither a file nor MODULE:FUNCTION "
            "(forms: file.py, file.py:function, module:function)",
            param_hint="TARGET",
        )
    return Target(text, module=spec, function=function)


def load_function(target: Target) -> Callable[[Any], Any]:
    """Import the target's Python function (its ``execute`` when none is named).

    A file's directory (or, for a module, the current directory) goes first on ``sys.path``
    so the code can import its siblings. Raises :class:`ConfigError` when the import fails or
    the function is missing.
    """
    name = target.function or "execute"
    try:
        if target.path is not None:
            if target.language != "python":
                raise ConfigError(
                    f"{target.path} is not a Python file; only Python runs locally. "
                    "Run it in a container with --runner node"
                    if target.language == "node"
                    else f"{target.path} is not a Python file; only Python runs locally"
                )
            path = target.path.resolve()
            sys.path.insert(0, str(path.parent))
            module_name = path.stem if path.stem not in sys.modules else f"_target_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"cannot load {target.path} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            where = str(target.path)
        else:
            assert target.module is not None
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(target.module)
            where = target.module
    except ExecutorError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"importing the target {target.text!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"{where} does not define a callable {name}(input)")
    return function  # type: ignore[no-any-return]


def container_files(target: Target, runner: str | None) -> dict[str, str]:
    """The files injecting ``target`` into a runner image as its execute module."""
    assert target.path is not None
    language = runner or target.language
    if language == "go":
        raise click.UsageError(GO_NOTE)
    if language not in RUNNER_MODULES:
        raise click.UsageError(
            f"cannot tell which runner {target.path} is for; pass --runner python|node"
        )
    source = target.path.read_text()
    module_path = RUNNER_MODULES[language]
    expected = RUNNER_FUNCTIONS[language]
    if target.function in (None, expected):
        return {module_path: source}
    # Another function name: ship the file beside a one-line shim re-exporting it.
    fn = target.function
    if language == "python":
        return {
            "/app/user_task.py": source,
            module_path: f"from user_task import {fn} as execute\n",
        }
    return {
        "/app/user_task.mjs": source,
        module_path: f'export {{ {fn} as executeFunction }} from "./user_task.mjs";\n',
    }


# --- shared options ------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``256m``, ``1g``, ``512MiB``, ``1048576`` → bytes (binary units)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size like 256m or 1g", param_hint="--memory")
    number, unit = match.groups()
    scale = 1024 ** "bkmgt".index(unit.lower() or "b")
    return int(float(number) * scale)


@dataclass
class RunOptions:
    """The executor flags shared by ``run`` and ``batch``."""

    runner: str | None = None
    image: str | None = None
    timeout: float | None = None
    no_timeout: bool = False
    memory: str | None = None
    cpus: float | None = None
    network: bool | None = None
    runtime: str | None = None
    pool_size: int | None = None
    reuse: bool = False
    labels: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def in_container(self) -> bool:
        return self.runner is not None or self.image is not None

    def timeout_value(self, default: float | None) -> float | None:
        if self.no_timeout:
            return None
        return self.timeout if self.timeout is not None else default


def _executor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--runner",
            type=click.Choice(sorted(RUNNER_IMAGES)),
            help="Run in a container of this runner image (TARGET becomes its execute module).",
        ),
        click.option("--image", metavar="IMAGE", help="Run in a container of this image."),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Per-call time limit (default 30).",
        ),
        click.option("--no-timeout", is_flag=True, help="No time limit at all."),
        click.option("--memory", metavar="SIZE", help="Container memory limit, e.g. 256m, 1g."),
        click.option(
            "--cpus", type=click.FloatRange(min=0, min_open=True), help="Container CPU limit."
        ),
        click.option(
            "--network/--no-network",
            default=None,
            help="Give the container a network (default: none).",
        ),
        click.option("--runtime", metavar="NAME", help="Engine runtime, e.g. runsc (gVisor)."),
        click.option(
            "--pool-size",
            type=click.IntRange(min=0),
            help="Keep this many containers started ahead of calls.",
        ),
        click.option(
            "--reuse",
            is_flag=True,
            help="Let one container serve many calls (trusted code only).",
        ),
        click.option(
            "--label",
            "labels",
            multiple=True,
            metavar="KEY=VALUE",
            help="Extra label on every container (repeatable).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _options(kwargs: dict[str, Any]) -> RunOptions:
    names = RunOptions.__dataclass_fields__
    opts = RunOptions(**{k: kwargs.pop(k) for k in list(kwargs) if k in names and k != "extra"})
    if not opts.in_container:
        container_only = {
            "--memory": opts.memory,
            "--cpus": opts.cpus,
            "--network/--no-network": opts.network,
            "--runtime": opts.runtime,
            "--pool-size": opts.pool_size,
            "--reuse": opts.reuse or None,
            "--label": opts.labels or None,
        }
        given = [name for name, value in container_only.items() if value is not None]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} apply only in a container: add --runner or --image "
                "(local runs are not isolated)"
            )
    return opts


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--label")
        labels[key] = value
    return labels


def build_executor(target: Target | None, opts: RunOptions) -> Executor[Any, Any]:
    """A LocalExecutor for the target, or a ContainerExecutor when a runner/image is given."""
    if not opts.in_container:
        from ._local import LocalConfig, LocalExecutor

        if target is None:
            raise click.UsageError("missing TARGET (or give --runner/--image to run an image)")
        function = load_function(target)
        return LocalExecutor(function, LocalConfig(timeout=opts.timeout_value(30.0)))

    from ._container import ContainerConfig, ContainerExecutor

    if opts.runner == "go" and target is not None:
        raise click.UsageError(GO_NOTE)
    if target is not None and target.path is None:
        raise click.UsageError(
            f"in a container TARGET must be a file (the runner's execute module), got "
            f"{target.text!r}"
        )
    image = opts.image or RUNNER_IMAGES[opts.runner or "python"]
    files = container_files(target, opts.runner) if target is not None else {}
    settings: dict[str, Any] = {"files": files, "timeout": opts.timeout_value(30.0)}
    if opts.memory is not None:
        settings["memory_bytes"] = parse_size(opts.memory)
    if opts.cpus is not None:
        settings["cpus"] = opts.cpus
    if opts.network is not None:
        settings["network"] = opts.network
    if opts.runtime:
        settings["runtime"] = opts.runtime
    if opts.pool_size is not None:
        settings["pool_size"] = opts.pool_size
    if opts.reuse:
        settings["reuse"] = True
    if opts.labels:
        settings["labels"] = _labels(opts.labels)
    executor: ContainerExecutor[Any, Any] = ContainerExecutor(ContainerConfig(image, **settings))
    return executor


def read_input(spec: str | None) -> Any:
    """``--input``: JSON text, ``@file`` or ``-`` (stdin; also when omitted and piped)."""
    if spec is None:
        if sys.stdin.isatty():
            raise click.UsageError("missing --input JSON|@FILE|- (or pipe the input on stdin)")
        spec = "-"
    if spec == "-":
        raw = sys.stdin.buffer.read()
        source = "stdin"
    elif spec.startswith("@"):
        try:
            raw = Path(spec[1:]).read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {spec[1:]}: {exc}", param_hint="--input"
            ) from exc
        source = spec[1:]
    else:
        raw = spec.encode()
        source = "--input"
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InputValidationError(f"{source} is not valid JSON: {exc}") from exc


# --- the command group -----------------------------------------------------------------------


class _Group(click.Group):
    """Turns library errors escaping a command into the JSON report and exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExecutorError as exc:
            ctx.exit(report_error(exc))
        except KeyboardInterrupt:
            _say("interrupted; no container was left behind", style="yellow")
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="executor", prog_name="executor")
def cli() -> None:
    """Run typed tasks in-process or in locked-down Docker containers."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``executor`` script and ``python -m executor``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="executor")


# --- run ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("target", required=False)
@click.option("--input", "-i", "input_spec", metavar="JSON|@FILE|-", help="The input.")
@click.option("--details", is_flag=True, help="Print timings, logs and container data too.")
@_executor_options
def run(target: str | None, input_spec: str | None, details: bool, **kwargs: Any) -> None:
    """Run TARGET once and print its output as JSON.

    TARGET is file.py (its `execute` function), file.py:function or module:function, run
    in-process; with --runner python|node the file becomes the runner's execute module
    (/app/execute.py, /app/execute.mjs) in a locked-down container. With --image and no
    TARGET the image's own task runs.
    """
    opts = _options(kwargs)
    parsed = parse_target(target) if target is not None else None
    executor = build_executor(parsed, opts)
    value = read_input(input_spec)
    result = anyio.run(_run_once, executor, value)
    payload = msgspec.structs.asdict(result) if details else result.output
    try:
        data = _encode_output(payload)
    except (TypeError, msgspec.EncodeError) as exc:
        raise OutputValidationError(f"cannot be encoded as JSON: {exc}") from exc
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()


async def _run_once(executor: Executor[Any, Any], value: Any) -> Execution[Any]:
    stop = _StopOnSignal("run")
    with stop:
        async with executor:
            with stop.scope:
                return await executor.run(value)
    # Only reached when a signal cancelled the call (its container is already removed).
    raise KeyboardInterrupt


class _StopOnSignal:
    """SIGINT/SIGTERM cancel :attr:`scope` once; cleanup then runs to its end.

    Used instead of the default KeyboardInterrupt so that a Ctrl-C (or a ``kill``) arriving
    anywhere cancels the calls in flight, their containers are removed, and the command can
    still report what finished. A second signal only says that cleanup is under way.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.scope = anyio.CancelScope()
        self.interrupted = False
        self._handled: list[int] = []

    def _interrupt(self) -> None:
        if self.interrupted:
            _say(f"{self.what}: still removing containers, please wait", style="yellow")
            return
        self.interrupted = True
        self.scope.cancel()

    def __enter__(self) -> _StopOnSignal:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._interrupt)
                self._handled.append(signum)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._handled:
            loop.remove_signal_handler(signum)


# --- batch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadLine:
    """An input line that is not JSON: recorded as its own error line, never dropped."""

    error: InputValidationError


class _LineExecutor(Executor[Any, Any]):
    """Runs parsed lines through ``inner``; a :class:`BadLine` fails with its own error."""

    def __init__(self, inner: Executor[Any, Any]) -> None:
        self.inner = inner

    async def run(self, input: Any) -> Execution[Any]:
        if isinstance(input, BadLine):
            raise input.error
        return await self.inner.run(input)

    async def execute(self, input: Any) -> Any:
        if isinstance(input, BadLine):
            raise input.error
        return await self.inner.execute(input)


_decode_line = msgspec.json.Decoder().decode


def _parse_line(number: int, line: bytes) -> Any:
    try:
        return _decode_line(line)
    except msgspec.DecodeError as exc:
        reason = "empty line" if not line.strip() else f"not valid JSON: {exc}"
        return BadLine(InputValidationError(f"line {number + 1}: {reason}"))


def _read_lines(stream: IO[bytes], count: int) -> list[bytes]:
    lines = []
    for _ in range(count):
        line = stream.readline()
        if not line:
            break
        lines.append(line)
    return lines


async def _input_items(stream: IO[bytes]) -> AsyncIterator[Any]:
    """Parsed input lines, read lazily in a worker thread (stdin may block)."""
    number = 0
    while True:
        chunk = await anyio.to_thread.run_sync(_read_lines, stream, 256)
        if not chunk:
            return
        for line in chunk:
            yield _parse_line(number, line.rstrip(b"\r\n"))
            number += 1


def _count_lines(path: str) -> int | None:
    """Lines in a regular file (for the progress bar's ETA), or ``None``."""
    if path == "-" or not Path(path).is_file():
        return None
    count = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


@dataclass
class BatchState:
    finished: int = 0
    failed: int = 0
    interrupted: bool = False


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._bar: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}/s"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=_console(),
            transient=False,
        )
        self._task = self._bar.add_task("batch", total=total, failed=0, rate="-")
        self._started = time.monotonic()

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, finished: int, failed: int) -> None:
        if self._bar is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.update(
            self._task, completed=finished, failed=failed, rate=f"{finished / elapsed:.1f}"
        )


@cli.command()
@click.argument("target", required=False)
@click.option(
    "--inputs",
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="JSON-lines file of inputs, one per line ('-': stdin).",
)
@click.option(
    "--output",
    "-o",
    default="-",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="Where result lines go (default stdout).",
)
@click.option("--concurrency", "-c", default=8, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
@_executor_options
def batch(
    target: str | None,
    inputs: str,
    output: str,
    concurrency: int,
    progress: bool | None,
    **kwargs: Any,
) -> None:
    """Run TARGET once per line of --inputs; write one JSON line per input.

    Result lines are written in completion order, each carrying the 0-based line index:
    {"index": i, "ok": true, "output": ...} or {"index": i, "ok": false, "error": {...}}.
    A line that is not JSON gets an INPUT_INVALID error line. Exit status 0 when every
    line succeeded, 1 when any failed, 130 when interrupted (Ctrl-C).
    """
    opts = _options(kwargs)
    parsed = parse_target(target) if target is not None else None
    executor = build_executor(parsed, opts)
    show = _stderr_is_tty() if progress is None else progress
    total = _count_lines(inputs) if show else None
    state = BatchState()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        source: IO[bytes] = (
            sys.stdin.buffer if inputs == "-" else stack.enter_context(open(inputs, "rb"))
        )
        sink: IO[bytes] = (
            sys.stdout.buffer if output == "-" else stack.enter_context(open(output, "wb"))
        )
        bar = stack.enter_context(_Progress(show, total))
        anyio.run(_batch, executor, source, sink, concurrency, bar, state)
    elapsed = time.monotonic() - started
    where = "" if output == "-" else f"; results in {output}"
    if state.interrupted:
        _say(
            f"batch: interrupted; {state.finished} finished ({state.failed} failed) "
            f"in {elapsed:.1f} s, every container removed{where}",
            style="yellow",
        )
        sys.exit(EXIT_INTERRUPTED)
    ok = state.finished - state.failed
    _say(
        f"batch: {state.finished} finished, {ok} ok, {state.failed} failed "
        f"in {elapsed:.1f} s{where}",
        style="red" if state.failed else "green",
    )
    sys.exit(EXIT_FAILED if state.failed else 0)


async def _batch(
    executor: Executor[Any, Any],
    source: IO[bytes],
    sink: IO[bytes],
    concurrency: int,
    bar: _Progress,
    state: BatchState,
) -> None:
    stop = _StopOnSignal("batch")
    with stop:
        async with executor:
            await _preflight(executor)
            with stop.scope:
                stream = _LineExecutor(executor).map(
                    _input_items(source), concurrency=concurrency, on_progress=bar.update
                )
                async with stream:
                    async for index, result in stream:
                        state.finished += 1
                        ok, data = _result_line(index, result)
                        state.failed += not ok
                        sink.write(data)
                        sink.flush()  # finished lines are on disk even if we are killed
        sink.flush()
    state.interrupted = stop.interrupted


def _result_line(index: int, result: Any) -> tuple[bool, bytes]:
    """``(ok, line)``; an output JSON cannot hold becomes an OUTPUT_INVALID error line."""
    if not isinstance(result, ExecutorError):
        try:
            return True, _encode_output({"index": index, "ok": True, "output": result}) + b"\n"
        except (TypeError, msgspec.EncodeError) as exc:
            result = OutputValidationError(f"cannot be encoded as JSON: {exc}")
    return False, _encode_error({"index": index, "ok": False, "error": result.to_dict()}) + b"\n"


async def _preflight(executor: Executor[Any, Any]) -> None:
    """Fail once, before any line runs, when the engine or the image is missing."""
    from ._container import ContainerExecutor, _build_hint

    if isinstance(executor, ContainerExecutor):
        engine = executor.engine
        await engine.ping()
        image = executor.config.image
        if not await engine.image_exists(image):
            raise ImageNotFound(image, engine=engine.name, hint=_build_hint(image))


# --- engine helpers (doctor, images, reap) ------------------------------------------------------


def _engine_name() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@contextlib.asynccontextmanager
async def _docker() -> AsyncIterator[aiodocker.Docker]:
    """An aiodocker client whose connection attempts fail fast; errors translated."""
    import aiodocker
    import aiohttp

    from ._engine import engine_errors

    name = _engine_name()
    try:
        timeout = aiohttp.ClientTimeout(total=ENGINE_TIMEOUT, connect=5, sock_connect=5)
        client = aiodocker.Docker(timeout=timeout)
    except (ValueError, OSError) as exc:
        raise EngineUnavailable(f"no Docker engine found ({exc}).", engine=name) from exc
    try:
        with engine_errors(name):
            yield client
    finally:
        await client.close()


async def _bounded(awaitable: Any, what: str) -> Any:
    """Await with :data:`ENGINE_TIMEOUT`; a hang becomes :class:`EngineUnavailable`."""
    try:
        with anyio.fail_after(ENGINE_TIMEOUT):
            return await awaitable
    except TimeoutError as exc:
        raise EngineUnavailable(
            f"the Docker engine at {_engine_name()} did not answer {what} "
            f"within {ENGINE_TIMEOUT:g} s.",
            engine=_engine_name(),
        ) from exc


def _version_of(image: dict[str, Any]) -> str | None:
    labels = (image.get("Config") or {}).get("Labels") or image.get("Labels") or {}
    for key in ("org.opencontainers.image.version", "dev.executor.version"):
        if labels.get(key):
            return str(labels[key])
    versions = [
        tag.rsplit(":", 1)[1]
        for tag in image.get("RepoTags") or []
        if re.fullmatch(r"v?\d+(\.\d+)*([-+.].*)?", tag.rsplit(":", 1)[1])
    ]
    return max(versions, default=None)


async def list_images(include_all: bool = False) -> list[dict[str, Any]]:
    """Runner and generator images on the engine: repository, tags, version, id, size."""
    async with _docker() as docker:
        images = await _bounded(docker.images.list(), "a request to list images")
    prefixes = ("executor/",) if not include_all else ("executor/", "executor-")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for image in images:
        for ref in image.get("RepoTags") or []:
            repository, _, tag = ref.rpartition(":")
            if not repository.startswith(prefixes):
                continue
            key = (repository, str(image.get("Id")))
            row = rows.setdefault(
                key,
                {
                    "repository": repository,
                    "tags": [],
                    "version": _version_of(image),
                    "id": str(image.get("Id", "")).removeprefix("sha256:")[:12],
                    "size_mb": round(int(image.get("Size") or 0) / 1e6, 1),
                    "created": time.strftime(
                        "%Y-%m-%d %H:%M", time.gmtime(int(image.get("Created") or 0))
                    ),
                },
            )
            row["tags"].append(tag)
    return sorted(rows.values(), key=lambda r: (r["repository"], r["tags"]))


@cli.group()
def images() -> None:
    """Build and list the runner images."""


@images.command("build")
@click.argument("targets", nargs=-1)
@click.option("--set", "variables", multiple=True, metavar="VAR=VALUE", help="Bake variable.")
@click.option("--force", is_flag=True, help="Rebuild even when up to date.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
def images_build(
    targets: tuple[str, ...], variables: tuple[str, ...], force: bool, quiet: bool
) -> None:
    """Build bake targets or groups (default: runners and generators) from docker-bake.hcl."""
    from . import _images

    argv = ["build", *(targets or ("default",))]
    for item in variables:
        argv += ["--set", item]
    if force:
        argv.append("--force")
    if quiet:
        argv.append("--quiet")
    code = _images.main(argv)
    sys.exit(code if code == 0 else 9 if not anyio.run(_images.engine_answers) else EXIT_FAILED)


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
@click.option("--all", "include_all", is_flag=True, help="Also base and derived images.")
def images_list(as_json: bool, include_all: bool) -> None:
    """List the executor images on the engine with their versions."""
    rows = anyio.run(list_images, include_all)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        _say("no executor images on this engine; build them with `executor images build`")
        return
    header = ("REPOSITORY", "TAGS", "VERSION", "IMAGE ID", "SIZE", "CREATED (UTC)")
    table = [
        (
            r["repository"],
            ",".join(r["tags"]),
            r["version"] or "-",
            r["id"],
            f"{r['size_mb']} MB",
            r["created"],
        )
        for r in rows
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        grid = Table(*header, box=None, header_style="bold")
        for line in table:
            grid.add_row(*line)
        Console().print(grid)
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=False)]
    for line in (header, *table):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


# --- doctor ------------------------------------------------------------------------------------


@dataclass
class Check:
    """One doctor finding: ``status`` is ``ok``, ``warn`` (optional) or ``fail``."""

    name: str
    status: str
    detail: str
    fix: str | None = None


MIN_API_VERSION = (1, 41)


async def diagnose(smoke: bool = True) -> list[Check]:
    """Check the engine, its API version, runtimes, the runner images and one real call."""
    from . import __version__

    checks: list[Check] = []
    name = _engine_name()
    try:
        async with _docker() as docker:
            version = await _bounded(docker.version(), "a version request")
            info = await _bounded(docker.system.info(), "an info request")
            checks.append(
                Check(
                    "engine",
                    "ok",
                    f"{name}: Docker {version.get('Version', '?')} "
                    f"({info.get('OperatingSystem', '?')})",
                )
            )
            api = str(version.get("ApiVersion", "0"))
            api_tuple = tuple(int(p) for p in api.split(".") if p.isdigit())
            if api_tuple >= MIN_API_VERSION:
                checks.append(Check("api", "ok", f"API {api} (need >= 1.41)"))
            else:
                checks.append(
                    Check(
                        "api",
                        "fail",
                        f"API {api} is older than 1.41",
                        "upgrade the Docker engine (Docker 20.10 or newer)",
                    )
                )
            runtimes = sorted((info.get("Runtimes") or {}).keys())
            default_runtime = info.get("DefaultRuntime", "runc")
            if "runsc" in runtimes:
                checks.append(
                    Check(
                        "runtimes",
                        "ok",
                        f"{', '.join(runtimes)} (default {default_runtime}); "
                        "gVisor available: --runtime runsc / ContainerConfig(runtime='runsc')",
                    )
                )
            else:
                checks.append(
                    Check(
                        "runtimes",
                        "warn",
                        f"{', '.join(runtimes) or 'none reported'}; runsc (gVisor) is not "
                        "registered, so containers share the host kernel (optional hardening)",
                        "install gVisor and register it: `make engine` does both on Debian "
                        "(or `runsc install && systemctl restart docker`)",
                    )
                )
            for language, ref in RUNNER_IMAGES.items():
                checks.append(await _image_check(docker, language, ref, __version__))
    except EngineUnavailable as exc:
        checks.append(
            Check(
                "engine",
                "fail",
                exc.message.split(" Is the engine")[0],
                "start one with `make engine`, or point DOCKER_HOST at a running engine "
                "(e.g. unix:///var/run/docker.sock)",
            )
        )
        return checks
    if smoke and all(c.status != "fail" for c in checks):
        checks.append(await _smoke_check())
    return checks


async def _image_check(docker: aiodocker.Docker, language: str, ref: str, version: str) -> Check:
    import aiodocker

    try:
        image = await _bounded(docker.images.inspect(ref), f"inspecting {ref}")
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise
        return Check(
            f"runner-{language}",
            "fail",
            f"{ref} is missing",
            f"make build-runner-{language}   (or `executor images build runner-{language}`)",
        )
    found = _version_of(image) or "unversioned"
    if found != version:
        return Check(
            f"runner-{language}",
            "warn",
            f"{ref} is version {found}, the library is {version}",
            f"rebuild it: make build-runner-{language}",
        )
    return Check(
        f"runner-{language}",
        "ok",
        f"{ref} version {found} ({str(image.get('Id', ''))[7:19]})",
    )


async def _smoke_check() -> Check:
    from ._container import ContainerConfig, ContainerExecutor

    config = ContainerConfig(RUNNER_IMAGES["python"], timeout=ENGINE_TIMEOUT * 2)
    started = time.monotonic()
    try:
        async with ContainerExecutor[Any, Any](config) as ex:
            output = await ex.execute({"doctor": True})
    except ExecutorError as exc:
        return Check(
            "container",
            "fail",
            f"a locked-down python runner call failed: [{exc.code}] {exc.message}",
            "see the message; `docker run --rm executor/runner-python:latest` shows more",
        )
    if output != {"doctor": True}:
        return Check("container", "fail", f"the echo call returned {output!r}", "rebuild images")
    return Check(
        "container",
        "ok",
        f"a locked-down python runner call took {time.monotonic() - started:.2f} s",
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
@click.option("--no-smoke", is_flag=True, help="Skip the test call in a container.")
def doctor(as_json: bool, no_smoke: bool) -> None:
    """Check the engine, runtimes and runner images; print a fix for each problem.

    Exit status 0 when nothing failed (warnings allowed), 1 otherwise.
    """
    checks = anyio.run(diagnose, not no_smoke)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        for c in checks:
            click.echo(json.dumps({k: v for k, v in c.__dict__.items() if v is not None}))
    else:
        marks = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}
        tty = sys.stdout.isatty()
        for c in checks:
            mark, style = marks[c.status]
            if tty:
                from rich.console import Console
                from rich.text import Text

                text = Text()
                text.append(mark, style=style)
                text.append(f"  {c.name:<14} {c.detail}")
                if c.fix:
                    text.append(f"\n      fix: {c.fix}", style="cyan")
                Console(highlight=False).print(text)
            else:
                click.echo(f"{mark}  {c.name:<14} {c.detail}")
                if c.fix:
                    click.echo(f"      fix: {c.fix}")
        click.echo(
            f"doctor: {len(failed)} problem(s)" if failed else "doctor: everything is in place"
        )
    sys.exit(EXIT_FAILED if failed else 0)


# --- reap --------------------------------------------------------------------------------------


@cli.command("reap")
@click.option(
    "--all",
    "include_live",
    is_flag=True,
    help="Also remove containers of live processes (only when no executor is running).",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only containers carrying this label (repeatable; all must match).",
)
@click.option("--verbose", "-v", is_flag=True, help="Print the removed container ids.")
def reap_command(include_live: bool, labels: tuple[str, ...], verbose: bool) -> None:
    """Remove containers left behind by processes that died (SIGKILL, crash)."""
    from ._reap import reap

    wanted: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not key or not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {label!r}", param_hint="--label")
        wanted[key] = value

    async def go() -> list[str]:
        removed: list[str] = await _bounded(
            reap(include_live=include_live, labels=wanted), "the reap requests"
        )
        return removed

    removed = anyio.run(go)
    if verbose:
        for container_id in removed:
            click.echo(container_id)
    click.echo(f"reaped {len(removed)} orphaned container(s)")
