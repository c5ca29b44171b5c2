"""``executor run``: one call, its output as one JSON line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import anyio
import click
import msgspec

from .._errors import OutputValidationError
from .._stream import LogLine
from .options import StopOnSignal, build_executor, executor_options, read_input, run_options
from .output import encode_output, task_stdout_to_stderr
from .targets import parse_target

if TYPE_CHECKING:
    from .._base import Execution, Executor
    from .._code import Usage

__all__ = ["run"]


@click.command()
@click.argument("target", required=False)
@click.option("--input", "-i", "input_spec", metavar="JSON|@FILE|-", help="The input.")
@click.option("--details", is_flag=True, help="Print timings, logs and container data too.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print the task's log lines on stderr as they arrive (then the output as usual).",
)
@click.option(
    "--usage",
    "show_usage",
    is_flag=True,
    help="Print what the call used (CPU seconds, peak memory, wall seconds) on stderr.",
)
@executor_options
def run(
    target: str | None,
    input_spec: str | None,
    details: bool,
    follow: bool,
    show_usage: bool,
    **kwargs: Any,
) -> None:
    """Run TARGET once and print its output as JSON.

    TARGET is file.py (its `execute` function), file.py:function or module:function, run
    in-process; with --runner python|node the file becomes the runner's execute module
    (/app/execute.py, /app/execute.mjs) in a locked-down container. With --image and no
    TARGET the image's own task runs.
    """
    opts = run_options(kwargs)
    parsed = parse_target(target) if target is not None else None
    # Stdout is the result's alone: an in-process task's own output goes to stderr.
    with task_stdout_to_stderr() as stdout:
        executor = build_executor(parsed, opts)
        value = read_input(input_spec)
        result = anyio.run(_run_once, executor, value, follow)
        payload = msgspec.structs.asdict(result) if details else result.output
        try:
            data = encode_output(payload)
        except (TypeError, msgspec.EncodeError) as exc:
            raise OutputValidationError(f"cannot be encoded as JSON: {exc}") from exc
        stdout.write(data + b"\n")
        if show_usage:
            sys.stderr.write(usage_line(result.usage) + "\n")


def usage_line(usage: Usage | None) -> str:
    """``usage: cpu_time=0.012 s peak_memory=15.2 MiB wall_time=0.034 s`` (n/a: not reported)."""
    if usage is None:
        return "usage: not reported (an in-process call, or a runner that does not measure it)"
    cpu = "n/a" if usage.cpu_time is None else f"{usage.cpu_time:.3f} s"
    peak = "n/a" if usage.peak_memory is None else f"{usage.peak_memory / 2**20:.1f} MiB"
    wall = "n/a" if usage.wall_time is None else f"{usage.wall_time:.3f} s"
    return f"usage: cpu_time={cpu} peak_memory={peak} wall_time={wall}"


async def _run_once(executor: Executor[Any, Any], value: Any, follow: bool) -> Execution[Any]:
    stop = StopOnSignal("run")
    with stop:
        async with executor:
            with stop.scope:
                if follow:
                    return await _followed(executor, value)
                return await executor.run(value)
    # Only reached when a signal cancelled the call (its container is already removed).
    raise KeyboardInterrupt


async def _followed(executor: Executor[Any, Any], value: Any) -> Execution[Any]:
    """The call through ``stream()``: each log line goes to stderr as it arrives."""
    err = sys.stderr
    async with executor.stream(value) as events:
        async for event in events:
            if isinstance(event, LogLine):
                err.write(event.text + "\n")
                err.flush()
            else:
                return event
    raise AssertionError("a stream always ends with its Execution or an error")
