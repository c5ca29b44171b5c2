"""``executor batch``: one call per line of a JSON-lines file, results as they finish."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import click
import msgspec

from .._base import Executor
from .._errors import ExecutorError, ImageNotFound, InputValidationError, OutputValidationError
from .options import StopOnSignal, build_executor, executor_options, run_options
from .output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    console,
    encode_error,
    encode_output,
    say,
    stderr_is_tty,
    task_stdout_to_stderr,
)
from .targets import parse_target

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._base import Execution

__all__ = ["batch"]


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
            console=console(),
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


@click.command()
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
@executor_options
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
    opts = run_options(kwargs)
    parsed = parse_target(target) if target is not None else None
    show = stderr_is_tty() if progress is None else progress
    total = _count_lines(inputs) if show else None
    state = BatchState()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        # Stdout is the result lines' alone: an in-process task's own output goes to stderr.
        stdout = stack.enter_context(task_stdout_to_stderr())
        executor = build_executor(parsed, opts)
        source: IO[bytes] = (
            sys.stdin.buffer if inputs == "-" else stack.enter_context(open(inputs, "rb"))
        )
        sink: IO[bytes] = stdout if output == "-" else stack.enter_context(open(output, "wb"))
        bar = stack.enter_context(_Progress(show, total))
        anyio.run(_batch, executor, source, sink, concurrency, bar, state)
    elapsed = time.monotonic() - started
    where = "" if output == "-" else f"; results in {output}"
    if state.interrupted:
        say(
            f"batch: interrupted; {state.finished} finished ({state.failed} failed) "
            f"in {elapsed:.1f} s, every container removed{where}",
            style="yellow",
        )
        sys.exit(EXIT_INTERRUPTED)
    ok = state.finished - state.failed
    say(
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
    stop = StopOnSignal("batch")
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
            return True, encode_output({"index": index, "ok": True, "output": result}) + b"\n"
        except (TypeError, msgspec.EncodeError) as exc:
            result = OutputValidationError(f"cannot be encoded as JSON: {exc}")
    return False, encode_error({"index": index, "ok": False, "error": result.to_dict()}) + b"\n"


async def _preflight(executor: Executor[Any, Any]) -> None:
    """Fail once, before any line runs, when the engine or the image is missing."""
    from ..container import ContainerExecutor
    from ..container.images import build_hint

    if isinstance(executor, ContainerExecutor):
        engine = executor.engine
        await engine.ping()
        image = executor.config.image
        if not await engine.images.exists(image):
            raise ImageNotFound(image, engine=engine.name, hint=build_hint(image))
