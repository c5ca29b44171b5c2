"""The executor flags shared by ``run`` and ``batch``, and what they build.

Also the one ``KEY=VALUE`` parser (``--label``, ``--set``, ``reap --label``), ``--input``
reading, and the signal handling that turns Ctrl-C into a clean cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click
import msgspec

from .._errors import InputValidationError
from .output import say
from .targets import (
    GO_NOTE,
    RUNNER_IMAGES,
    RUNNER_MODULES,
    Target,
    container_files,
    load_function,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._base import Executor

__all__ = [
    "RunOptions",
    "StopOnSignal",
    "build_executor",
    "executor_options",
    "parse_pairs",
    "parse_size",
    "read_input",
    "run_options",
]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``256m``, ``1g``, ``512MiB``, ``1048576`` → bytes (binary units)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size like 256m or 1g", param_hint="--memory")
    number, unit = match.groups()
    scale = 1024 ** "bkmgt".index(unit.lower() or "b")
    return int(float(number) * scale)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(text: str, option: str) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` → seconds."""
    match = _DURATION_RE.match(text)
    if not match:
        raise click.BadParameter(
            f"{text!r} is not a duration like 30m, 12h or 7d", param_hint=option
        )
    number, unit = match.groups()
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit.lower()]
    return float(number) * scale


def parse_pairs(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` strings → a dict (click's usage error for a malformed one)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        out[key] = value
    return out


@dataclass
class RunOptions:
    """The executor flags shared by ``run`` and ``batch``."""

    runner: str | None = None
    image: str | None = None
    timeout: float | None = None
    no_timeout: bool = False
    start_timeout: float | None = None
    memory: str | None = None
    cpus: float | None = None
    network: bool | None = None
    runtime: str | None = None
    seccomp: str | None = None
    mode: str | None = None
    containers: int | None = None
    fork: bool = False
    pool_size: int | None = None  # deprecated: --containers
    reuse: bool = False  # deprecated: --mode reuse
    labels: tuple[str, ...] = ()

    @property
    def in_container(self) -> bool:
        return self.runner is not None or self.image is not None

    def timeout_value(self, default: float | None) -> float | None:
        if self.no_timeout:
            return None
        return self.timeout if self.timeout is not None else default


class _RunnerChoice(click.Choice):  # type: ignore[type-arg]
    """The runners that take a TARGET; ``go`` gets the note on how Go code runs instead."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "go":
            self.fail(GO_NOTE, param, ctx)
        return super().convert(value, param, ctx)


def executor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The flags of :class:`RunOptions` as click options."""
    options = [
        click.option(
            "--runner",
            type=_RunnerChoice(sorted(RUNNER_MODULES)),
            help="Run in a container of this runner image (TARGET becomes its execute module).",
        ),
        click.option("--image", metavar="IMAGE", help="Run in a container of this image."),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="The task's own time limit, from delivery to answer (default 30).",
        ),
        click.option("--no-timeout", is_flag=True, help="No time limit on the task at all."),
        click.option(
            "--start-timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Limit on getting a container for a call (default 60).",
        ),
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
            "--seccomp",
            metavar="default|engine|PATH",
            help="System call filter: default, the library's profile (the default); engine, "
            "the engine's own; or the path of a JSON seccomp profile.",
        ),
        click.option(
            "--mode",
            type=click.Choice(["fresh", "pool", "reuse", "fork"]),
            help="fresh: a new container per call (default); pool: single-use containers "
            "started ahead; fork: a fresh process per call in containers wiped between calls "
            "(fast, isolated); reuse: one process serves many calls (trusted code only).",
        ),
        click.option(
            "--containers",
            type=click.IntRange(min=0),
            metavar="N",
            help="How many containers the mode keeps (default 4 in pool, reuse and fork).",
        ),
        click.option("--fork", is_flag=True, help="Short for --mode fork."),
        click.option("--pool-size", type=click.IntRange(min=0), hidden=True),
        click.option("--reuse", is_flag=True, hidden=True),
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


def run_options(kwargs: dict[str, Any]) -> RunOptions:
    """Take the :class:`RunOptions` flags out of a command's keyword arguments and check them."""
    names = RunOptions.__dataclass_fields__
    opts = RunOptions(**{k: kwargs.pop(k) for k in list(kwargs) if k in names})
    _resolve_mode(opts)
    if not opts.in_container:
        container_only = {
            "--start-timeout": opts.start_timeout,
            "--memory": opts.memory,
            "--cpus": opts.cpus,
            "--network/--no-network": opts.network,
            "--runtime": opts.runtime,
            "--seccomp": opts.seccomp,
            "--mode": opts.mode,
            "--containers": opts.containers,
            "--label": opts.labels or None,
        }
        given = [name for name, value in container_only.items() if value is not None]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} apply only in a container: add --runner or --image "
                "(local runs are not isolated)"
            )
    return opts


def _resolve_mode(opts: RunOptions) -> None:
    """Fold ``--fork`` and the deprecated ``--reuse``/``--pool-size`` into ``--mode`` and
    ``--containers`` (the old flags say so on stderr)."""
    implied = [
        (flag, mode)
        for flag, mode, given in (
            ("--fork", "fork", opts.fork),
            ("--reuse", "reuse", opts.reuse),
        )
        if given
    ]
    if opts.mode is not None:
        implied.insert(0, (f"--mode {opts.mode}", opts.mode))
    if len({mode for _, mode in implied}) > 1:
        raise click.UsageError(
            f"{' and '.join(flag for flag, _ in implied)} are different modes: choose one"
        )
    if implied:
        opts.mode = implied[0][1]
    if opts.reuse:
        say("executor: --reuse is deprecated since 0.3: use --mode reuse", style="yellow")
    if opts.pool_size is not None:
        if opts.containers is not None and opts.containers != opts.pool_size:
            raise click.UsageError(
                "--pool-size and --containers disagree: give --containers only "
                "(--pool-size is deprecated)"
            )
        opts.containers = opts.pool_size
        if opts.mode is None:
            opts.mode = "pool" if opts.pool_size else "fresh"
        say(
            f"executor: --pool-size is deprecated since 0.3: use --mode {opts.mode} "
            f"--containers {opts.pool_size}",
            style="yellow",
        )
    if opts.mode == "fresh" and opts.containers:
        raise click.UsageError(
            f"--containers {opts.containers} does not apply to --mode fresh (a new container "
            "per call): use --mode pool to keep containers started ahead of calls"
        )
    if opts.containers is not None and opts.mode is None:
        raise click.UsageError("--containers needs a --mode (pool, reuse or fork)")


def build_executor(target: Target | None, opts: RunOptions) -> Executor[Any, Any]:
    """A LocalExecutor for the target, or a ContainerExecutor when a runner/image is given."""
    if not opts.in_container:
        from .._local import LocalConfig, LocalExecutor

        if target is None:
            raise click.UsageError("missing TARGET (or give --runner/--image to run an image)")
        function = load_function(target)
        return LocalExecutor(function, LocalConfig(timeout=opts.timeout_value(30.0)))

    from ..container import ContainerConfig, ContainerExecutor

    if target is None and opts.runner is not None and opts.image is None:
        raise click.UsageError(
            f"--runner {opts.runner} needs a TARGET, the file to run: the stock runner images "
            "have no task of their own (use --image IMAGE to run an image's own task)"
        )
    if target is not None and target.path is None:
        raise click.UsageError(
            f"in a container TARGET must be a file (the runner's execute module), got "
            f"{target.text!r}"
        )
    image = opts.image or RUNNER_IMAGES[opts.runner or "python"]
    files = container_files(target, opts.runner) if target is not None else {}
    settings: dict[str, Any] = {"files": files, "timeout": opts.timeout_value(30.0)}
    if opts.start_timeout is not None:
        settings["start_timeout"] = opts.start_timeout
    if opts.memory is not None:
        settings["memory_bytes"] = parse_size(opts.memory)
    if opts.cpus is not None:
        settings["cpus"] = opts.cpus
    if opts.network is not None:
        settings["network"] = opts.network
    if opts.runtime:
        settings["runtime"] = opts.runtime
    if opts.seccomp is not None:
        settings["seccomp"] = opts.seccomp
    if opts.mode is not None:
        settings["mode"] = opts.mode
    if opts.containers is not None:
        settings["containers"] = opts.containers
    if opts.labels:
        settings["labels"] = parse_pairs(opts.labels, "--label")
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


class StopOnSignal:
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
            say(f"{self.what}: still removing containers, please wait", style="yellow")
            return
        self.interrupted = True
        self.scope.cancel()

    def __enter__(self) -> StopOnSignal:
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
